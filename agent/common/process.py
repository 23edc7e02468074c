"""Running programs: argument lists only, never a shell."""
import subprocess

from agent.common.errors import CommandFailed


def run(argv, *, check=True, timeout=None, input=None, env=None, cwd=None):
    """Run ``argv`` (a list) and return its stdout as text.

    Raises CommandFailed with the last line of stderr when it exits
    non-zero and ``check`` is true.
    """
    if isinstance(argv, str):
        raise TypeError("argv must be a list, not a string")
    argv = [str(a) for a in argv]
    proc = subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout, input=input, env=env, cwd=cwd,
                          check=False)
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr)
    return proc.stdout
