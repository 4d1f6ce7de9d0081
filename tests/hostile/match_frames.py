"""Issue 23: a traceback read by a class pattern walks frames to the worker's main(): host paths and settings
into the `plan` guidance (which goes into the LLM prompt), and the modules the confinement code still holds."""


class MatchFrames:
    name = "match_frames"

    def plan(self, ctx):
        try:
            1 / 0
        except ZeroDivisionError as error:
            match error:
                case object(__traceback__=object(tb_frame=frame)):
                    seen = []
                    while frame is not None:
                        match frame:
                            case object(f_locals=local_names, f_back=parent):
                                seen.append(repr(sorted(local_names))[:80])
                                settings = local_names.get("settings")
                                if settings is not None:
                                    match settings:
                                        case object(raw=raw):
                                            seen.append(repr(raw)[:200])
                                frame = parent
                    return {"guidance": " ".join(seen)[:390]}
        return None
