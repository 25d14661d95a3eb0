"""The error every command turns into one line and exit 2, kept apart from the settings.

``cli`` catches it around every command; importing it from ``agent.config`` would load
pydantic (over a tenth of a second of start-up) for ``--help``, ``simulate`` and the other
commands that never read a setting.
"""


class ConfigError(Exception):
    """A setting that cannot be used; the message is the single line shown to the operator."""
