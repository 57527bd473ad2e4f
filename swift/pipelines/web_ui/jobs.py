"""The commands the web UI started: each a child process in its own process group (so that stopping it also stops
what it started, such as torchrun workers), its output in a log file, and the run folder it writes to."""
import dataclasses
import glob
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

STOP_GRACE_SECONDS = 10


@dataclasses.dataclass
class Job:
    id: int
    command: str
    flags: list[str]
    process: subprocess.Popen
    log_path: str
    output_dir: Optional[str]  # absolute; None for commands that write no run folder
    started: float
    stopped: bool = False

    @property
    def status(self) -> str:
        code = self.process.poll()
        if code is None:
            return 'running'
        return 'stopped' if self.stopped else f'exited {code}'

    @property
    def label(self) -> str:
        return f'{self.id}: swift {self.command} [{self.status}]'


class JobManager:
    """Starts, lists and stops the web UI's child processes. They outlive the page, as ms-swift's do: stopping the
    web UI leaves a training running."""

    def __init__(self, log_dir: Optional[str] = None):
        self.log_dir = log_dir or tempfile.mkdtemp(prefix='swift-web-ui-')
        self.jobs: dict[int, Job] = {}
        self._lock = threading.Lock()  # gradio runs two clicks at once in two threads: each job its own id

    def start(self, command: str, flags: list[str], output_dir: Optional[str]) -> Job:
        with self._lock:
            job_id = len(self.jobs) + 1
            log_path = os.path.join(self.log_dir, f'job-{job_id}-{command}.log')
            with open(log_path, 'w') as log:  # the child keeps its own handle
                process = subprocess.Popen([sys.executable, '-m', 'swift.cli.main', command, *flags], stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
            job = Job(job_id, command, flags, process, log_path, output_dir and os.path.abspath(output_dir),
                      time.time())
            self.jobs[job_id] = job
        return job

    def get(self, job_id) -> Optional[Job]:
        try:
            return self.jobs.get(int(job_id))
        except (TypeError, ValueError):
            return None

    def stop(self, job: Job) -> None:
        """SIGTERM to the job's whole process group, SIGKILL if it is still there after a grace period."""
        if job.process.poll() is not None:
            return
        job.stopped = True
        _signal_group(job.process.pid, signal.SIGTERM)
        try:
            job.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(job.process.pid, signal.SIGKILL)
            job.process.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the child leads its own session, so its group id is its pid
    except ProcessLookupError:
        pass


def read_log(job: Job, max_chars: int = 20000) -> str:
    """The end of the job's output as a terminal shows it: a progress bar redrawn with carriage returns is one line
    at its latest state, not one line per redraw."""
    with open(job.log_path, encoding='utf-8', errors='replace', newline='') as f:  # keep the \r
        f.seek(max(0, os.path.getsize(job.log_path) - max_chars))
        text = f.read()
    return '\n'.join(line.rstrip('\r').split('\r')[-1] for line in text.split('\n'))


def logging_jsonl(job: Job) -> Optional[str]:
    """The logging.jsonl of the run the job writes: ``<output_dir>/vN-<date>/`` (or ``<output_dir>`` itself with
    --add_version false), the newest one written since the job started."""
    if not job.output_dir:
        return None
    found = [path for pattern in ('logging.jsonl', '*/logging.jsonl')
             for path in glob.glob(os.path.join(glob.escape(job.output_dir), pattern))
             if os.path.getmtime(path) >= job.started - 1]
    return max(found, key=os.path.getmtime, default=None)
