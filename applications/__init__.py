"""Real trained networks and real data for keras-patterns, available offline.

Nothing here downloads anything: the weights and images come from packages installed in the
environment (see each module's docstring for its source and licence).
"""
