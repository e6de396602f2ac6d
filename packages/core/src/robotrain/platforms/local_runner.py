"""The supervisor of one local job: ``python -m robotrain.platforms.local_runner JOB_FOLDER``.

It records its pid in job.json, runs the job's command from the workspace (its
output goes where the supervisor's goes: the job's log), and records how it
ended. SIGTERM (``invoke cancel``, Ctrl-C on a foreground run) reaches the
whole process group; the supervisor then records the job as canceled.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from robotrain.platforms.local_jobs import CANCELED, COMPLETED, FAILED, RUNNING, LocalJob, process_start


class Supervisor:
    def __init__(self, job: LocalJob) -> None:
        self.job = job
        self.canceled = False
        self.child: subprocess.Popen[bytes] | None = None

    def on_terminate(self, signum: int, frame: FrameType | None) -> None:
        self.canceled = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        record = self.job.write(
            state=RUNNING, pid=os.getpid(), process_start=process_start(os.getpid()), started=time.time()
        )
        command = [str(item) for item in record["command"]]
        print(f"robotrain: local job {self.job.job_id}: {shlex.join(command)}", flush=True)
        try:
            self.child = subprocess.Popen(command, cwd=self.job.workspace)
        except OSError as error:
            print(f"robotrain: cannot start the job: {error}", flush=True)
            self.job.write(state=FAILED, exit_code=None, ended=time.time(), reason=str(error))
            return 1
        code = self.child.wait()
        state = CANCELED if self.canceled else COMPLETED if code == 0 else FAILED
        print(f"robotrain: local job {self.job.job_id} {state} (exit code {code})", flush=True)
        self.job.write(state=state, exit_code=code, ended=time.time())
        return 0 if state == COMPLETED else 1


def main(argv: list[str]) -> int:
    supervisor = Supervisor(LocalJob(Path(argv[0])))
    signal.signal(signal.SIGTERM, supervisor.on_terminate)
    signal.signal(signal.SIGINT, supervisor.on_terminate)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
