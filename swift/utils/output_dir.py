"""The run folder layout users know from ms-swift: ``<output_dir>/v<N>-<YYYYMMDD-HHMMSS>``."""
import datetime as dt
import os
import re

_VERSION = re.compile(r'^v(\d+)-')


def next_run_dir(output_dir: str, add_version: bool = True) -> str:
    """Pick the next ``vN-date-time`` folder under ``output_dir``; N is one past the largest present. Without
    ``add_version`` (ms-swift's ``--add_version false``) the run is ``output_dir`` itself."""
    os.makedirs(output_dir, exist_ok=True)
    if not add_version:
        return output_dir
    versions = [int(m.group(1)) for name in os.listdir(output_dir) if (m := _VERSION.match(name))]
    version = max(versions, default=-1) + 1
    stamp = dt.datetime.now().strftime('%Y%m%d-%H%M%S')
    return os.path.join(output_dir, f'v{version}-{stamp}')
