"""--exist_ok (issue 13): swift export refuses an existing --output_dir in one line before loading anything, as
ms-swift does; --exist_ok true replaces it."""
import os

import pytest

from swift.pipelines.export import export_main
from swift.utils import SwiftError

from ..deploy.support import make_adapter


def test_existing_output_dir_is_refused_then_replaced(qwen2_dir, tmp_path):
    ckpt = make_adapter(qwen2_dir, str(tmp_path / 'checkpoint-1'), seed=0)
    out = tmp_path / 'merged'
    out.mkdir()
    (out / 'old.txt').write_text('keep me')
    argv = ['--model', qwen2_dir, '--adapters', ckpt, '--merge_lora', 'true', '--output_dir', str(out)]
    with pytest.raises(SwiftError, match='--output_dir .* already exists.*--exist_ok true'):
        export_main(argv)
    assert os.listdir(out) == ['old.txt']
    export_main([*argv, '--exist_ok', 'true'])
    assert os.path.isfile(out / 'config.json') and not os.path.exists(out / 'old.txt')
    # the default folder is checked too
    export_main(['--model', qwen2_dir, '--adapters', ckpt, '--merge_lora', 'true'])
    with pytest.raises(SwiftError, match='-merged already exists'):
        export_main(['--model', qwen2_dir, '--adapters', ckpt, '--merge_lora', 'true'])
