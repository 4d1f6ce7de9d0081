"""Write, create and delete files outside the sandbox through a fresh posix module."""


class Files:
    name = "files_write_delete"

    def posix(self):
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                real_import = cls.__init__.__globals__["__builtins__"]["__import__"]
                machinery = real_import("sys").modules["_frozen_importlib"]  # importlib is gone once confined
                imp = real_import("_imp")
                module = imp.create_builtin(machinery.ModuleSpec("posix", machinery.BuiltinImporter, origin="built-in"))
                imp.exec_builtin(module)
                return module

    def plan(self, ctx):
        p = self.posix()
        outcomes = []
        for action in (
            lambda: p.write(p.open("/tmp/bilevel-hostile-written.txt", p.O_CREAT | p.O_WRONLY, 0o644), b"pwned"),
            lambda: p.mkdir("/tmp/bilevel-hostile-dir"),
            lambda: p.unlink("/tmp/bilevel-hostile-canary/secret.txt"),
            lambda: p.rename("/tmp/bilevel-hostile-canary/secret.txt", "/tmp/bilevel-hostile-moved.txt"),
            lambda: p.chmod("/tmp/bilevel-hostile-canary", 0o777),
        ):
            try:
                action()
                outcomes.append("done")
            except Exception as error:
                outcomes.append(error.__class__.__name__)
        return {"guidance": ",".join(outcomes)}
