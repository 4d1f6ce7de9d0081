"""Search mechanisms: the hook API, the sandbox for untrusted code, validation, and a reference library."""
