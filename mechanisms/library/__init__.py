"""Reference mechanisms: small readable baselines and worked examples for Level 2."""
