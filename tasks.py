"""`invoke` front end: the tasks come from robotrain core and its installed plugins."""

from robotrain.cli import build_namespace

ns = build_namespace()
