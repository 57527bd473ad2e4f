"""Process lifetime under torchrun: no process outlives the one that started it."""
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies.

    A ``kill -9`` of the launcher (or of torchrun) otherwise leaves the training processes running on their own,
    still writing checkpoints into the run folder. Elsewhere than Linux this does nothing.
    """
    if not sys.platform.startswith('linux'):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
