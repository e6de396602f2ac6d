"""`invoke` front end: the tasks come from robotrain core and its installed plugins."""

import signal

from robotrain.cli import build_namespace

# `invoke --list | head`: a reader that stops early ends the listing quietly, as with other tools.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

ns = build_namespace()
