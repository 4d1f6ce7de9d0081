"""The search domain in pure Python: state, trace, proposals, rules, prompts. Imports nothing of ours."""
