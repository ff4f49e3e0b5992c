"""Agents: the runtime that turns a Python module into a mesh agent process."""
