"""Prefect tasks: one unit of work each, thin wrappers over search/, mechanisms/, workloads/ and infra/."""
