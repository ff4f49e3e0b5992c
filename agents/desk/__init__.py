"""The support desk: the agents ``hivewire up`` runs by default.

``triage`` takes each turn: it classifies the intent and sentiment of the
question while the knowledge agent searches, each under its own deadline, then
has ``answer`` stream a reply grounded in the passages found (citing them),
and flags a negative, unresolved turn for a human.
"""
