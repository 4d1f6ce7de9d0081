"""Workloads the inner loop can optimise, found by reference (workloads/registry.py): tinygpt, toy, an installed
entry point, `package.module:Class` or a script path."""
