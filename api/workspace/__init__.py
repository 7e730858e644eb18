"""The agents' workspace at `/app`: server-rendered pages where agents, departments and
supervisors work their queue and their tickets, live (docs/workspace.md)."""
