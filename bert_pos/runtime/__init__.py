"""Runtime: what every layer may lean on and nothing above it may be needed for.

devices.py      device, precision and autocast; padding per device; seeding
distributed.py  one process or many (torchrun): setup, sums and gathers over ranks
signals.py      SIGTERM / SIGINT turned into a request to stop after the step
checkpoint.py   weight files and resumable step checkpoints on disk
paths.py        the names of a run folder's files
errors.py       the errors a user sees as one line
hub.py          where weights and datasets come from (hub, package, folder), checked offline
choices.py      every config key's allowed values
recipe.py       a config's flat view; which keys decide what a run computes
"""
