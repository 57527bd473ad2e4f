"""--streaming: rows read lazily, encoded and packed on the fly, cut per rank, and resumed exactly mid-stream."""
import glob
import json
import os

import pytest

from swift.arguments import TrainArguments, parse_args
from swift.dataset.streaming import RowStream, open_stream
from swift.pipelines.train import sft_main
from swift.template import get_template
from swift.trainers.streaming import EncodedStream
from swift.utils import SwiftError

from ..e2e.test_training import _write_rows


def _contents(rows) -> list[str]:
    return [row and row['messages'][0]['content'] for row in rows]


def _train(model_dir: str, data: str, out, *extra: str) -> dict:
    """12 rows, 2 a step: an epoch is 6 steps, so 8 steps cross into the reshuffled second epoch."""
    result = sft_main(['--model', model_dir, '--dataset', data, '--streaming', 'true', '--max_steps', '8',
                       '--save_steps', '4', '--logging_steps', '1', '--per_device_train_batch_size', '2',
                       '--learning_rate', '5e-3', '--lora_rank', '16', '--seed', '7', '--report_to', 'none',
                       '--output_dir', str(out), *extra])
    return {h['step']: h['loss'] for h in result['log_history'] if 'loss' in h} | {'run_dir': result['run_dir']}


@pytest.fixture(scope='module')
def rows_file(tmp_path_factory) -> str:
    return _write_rows(tmp_path_factory.mktemp('stream') / 'rows.jsonl', 12)


@pytest.mark.parametrize('packing', [[], ['--packing', 'true', '--max_length', '256']], ids=['rows', 'packed'])
def test_streaming_sft_learns_and_resumes_exactly_mid_stream(qwen2_dir, rows_file, tmp_path, packing):
    straight = _train(qwen2_dir, rows_file, tmp_path / 'straight', *packing)
    assert straight[7] + straight[8] < 0.95 * (straight[1] + straight[2]), straight
    (checkpoint,) = glob.glob(os.path.join(straight['run_dir'], 'checkpoint-4'))
    position = json.load(open(os.path.join(checkpoint, 'stream_position-rank0.json')))
    if packing:  # 12 rows of ~58 tokens make 3 packs an epoch: 8 packs end after the 2nd pack of epoch 2
        assert position == {'epoch': 2, 'rows': 0, 'packs': 2}
    else:
        assert position == {'epoch': 0, 'rows': 8, 'packs': 0}
    resumed = _train(qwen2_dir, rows_file, tmp_path / 'resumed', *packing, '--resume_from_checkpoint', checkpoint)
    for step in range(5, 9):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-6), step


def test_packing_on_the_fly_joins_rows_up_to_the_length(qwen2_dir, rows_file):
    from transformers import AutoTokenizer
    template = get_template('qwen', AutoTokenizer.from_pretrained(qwen2_dir), max_length=256)
    stream, infos = open_stream([rows_file], shuffle=False)
    packs = [pack for _, pack in zip(range(6), EncodedStream(RowStream(stream, infos), template, pack_length=256))]
    lengths = [pack['lengths'] for pack in packs]
    assert all(len(row) >= 3 and sum(row) <= 256 for row in lengths), lengths
    assert all(len(pack['input_ids']) == len(pack['labels']) == sum(pack['lengths']) for pack in packs)
    assert sum(map(len, lengths[:3])) == 12  # an epoch's 12 rows in its packs, then the next epoch's


def test_ranks_read_distinct_rows_that_cover_the_stream(rows_file):
    seen = []
    for rank in (0, 1):
        stream, infos = open_stream([rows_file], shuffle=True, shuffle_buffer_size=4, rank=rank, world_size=2)
        seen.append(_contents(RowStream(stream, infos).rows(0)))
    assert len(seen[0]) == len(seen[1]) == 6
    assert sorted(seen[0] + seen[1]) == sorted(f'what is {i} plus {i}?' for i in range(12))


def test_shuffle_buffer_is_reseeded_per_epoch_and_an_offset_resumes(rows_file):
    stream, infos = open_stream([rows_file], shuffle_buffer_size=5, seed=3)
    rows = RowStream(stream, infos)
    first, again, second = _contents(rows.rows(0)), _contents(rows.rows(0)), _contents(rows.rows(1))
    assert first == again and sorted(first) == sorted(second) and first != second
    assert first != sorted(first, key=lambda q: int(q.split()[2]))
    assert _contents(rows.rows(0, 5)) == first[5:]


def test_interleave_prob_mixes_streams_until_the_first_runs_out(tmp_path):
    for name, count in (('a', 30), ('b', 5)):
        (tmp_path / f'{name}.jsonl').write_text(
            ''.join(json.dumps({'query': f'{name}{i}', 'response': 'r'}) + '\n' for i in range(count)))
    stream, infos = open_stream([str(tmp_path / 'a.jsonl'), str(tmp_path / 'b.jsonl')], shuffle=False,
                                interleave_prob=[0.5, 0.5])
    mixed = _contents(RowStream(stream, infos).rows(0))
    assert {q[0] for q in mixed} == {'a', 'b'} and len(mixed) < 35
    assert [q for q in mixed if q[0] == 'a'] == [f'a{i}' for i in range(len(mixed) - 5)]
    with pytest.raises(SwiftError, match='add up to 1'):
        open_stream([str(tmp_path / 'a.jsonl'), str(tmp_path / 'b.jsonl')], interleave_prob=[0.5, 0.6])


def test_parquet_csv_and_folders_stream_with_their_places(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder = tmp_path / 'corpus'
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{'query': f'p{i}', 'response': 'r'} for i in range(3)]),
                   folder / 'a.parquet', row_group_size=2)
    (folder / 'b.csv').write_text('query,response\nc0,r\nc1,r\n')
    stream, infos = open_stream([str(folder)], shuffle=False)
    assert _contents(RowStream(stream, infos).rows(0)) == ['p0', 'p1', 'p2', 'c0', 'c1']
    assert [row['where'] for row in stream] == [f'{folder}/a.parquet:row {i}' for i in (1, 2, 3)] + [
        f'{folder}/b.csv:{i}' for i in (2, 3)]


def test_bad_row_names_its_line_or_is_counted_with_strict_false(tmp_path):
    path = tmp_path / 'rows.jsonl'
    path.write_text('{"query": "a", "response": "b"}\n{"query": \n{"query": "c", "response": "d"}\n')
    stream, infos = open_stream([str(path)], shuffle=False)
    with pytest.raises(SwiftError, match=rf'^{path}:2: invalid JSON'):
        list(RowStream(stream, infos).rows(0))
    lenient = RowStream(stream, infos, strict=False)
    assert _contents(lenient.rows(0)) == ['a', None, 'c'] and lenient.malformed == 1


def test_streaming_needs_max_steps_and_is_never_split():
    with pytest.raises(SwiftError, match='^--streaming true needs --max_steps'):
        parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--streaming', 'true'])
    args = parse_args(TrainArguments, ['--model', 'm', '--dataset', 'd.jsonl', '--streaming', 'true',
                                       '--max_steps', '5', '--split_dataset_ratio', '0.1'])
    assert args.split_dataset_ratio == 0 and args.shuffle_buffer_size == 1000


RANK_SCRIPT = '''
import json, sys
from transformers import AutoTokenizer
from swift.arguments import TrainArguments, parse_args
from swift.pipelines.train import _load_stream
from swift.template import get_template
model_dir, data, out = sys.argv[1:]
args = parse_args(TrainArguments, ['--model', model_dir, '--dataset', data, '--streaming', 'true', '--max_steps', '3'])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
train, _ = _load_stream(args, get_template('qwen', tokenizer))
texts = [tokenizer.decode(item['input_ids']) for _, item in zip(range(6), train)]
json.dump(texts, open(f'{out}.{args.process_index}-of-{args.world_size}', 'w'))
'''


def test_two_processes_under_torchrun_read_distinct_rows(qwen2_dir, rows_file, tmp_path):
    import subprocess
    import sys
    script = tmp_path / 'ranks.py'
    script.write_text(RANK_SCRIPT)
    # --standalone: a free rendezvous port, so parallel test workers never collide
    result = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                             str(script), qwen2_dir, rows_file, str(tmp_path / 'seen')], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.load(open(tmp_path / f'seen.{rank}-of-2')) for rank in (0, 1)]
    questions = [{text.split('what is ')[1].split(' plus')[0] for text in texts} for texts in seen]
    assert len(questions[0]) == len(questions[1]) == 6 and not questions[0] & questions[1]
