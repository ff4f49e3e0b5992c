"""The research swarm: the second application that ships with Hivewire, beside the support desk.

``planner`` splits a brief ("Assess the market for X in region Y") into
sub-questions and hands each to ``analyst`` as a durable task; analyst
replicas answer them in parallel with tools (the research corpus through the
knowledge agent, CSV tables, a calculator) whose results are cached by input
and data hash; ``writer`` merges the findings into a cited Markdown report
streamed to the conversation. Every sub-task and model call runs under the
run's token and cost budget and its deadline. ``docs/research.md`` draws the
data flow.
"""
