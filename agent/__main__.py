"""``python -m agent``, kept for existing scripts: the same as ``python -m cli``.

The command line sits above the agent (``cli`` imports ``agent``, never the reverse), so this
entry point hands the process over by module name rather than importing it.
"""

import runpy

runpy.run_module("cli", run_name="__main__", alter_sys=True)
