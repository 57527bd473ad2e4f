"""One tab of the web UI, built from its declaration (pages/*.py): the main fields, a free "other flags" box, the
command it builds (shown), a run button, and the runtime: the jobs it started, a stop button, the log and the
curves of the selected job, refreshed every second."""
import dataclasses
from typing import Optional

from ...utils import SwiftError
from .command import build_flags, shown_command, validate
from .jobs import JobManager, logging_jsonl, read_log
from .plots import metric_figure, read_records

REFRESH_SECONDS = 1.0
TEXTS = {
    'en': {'command': 'Command', 'shown': 'The command this page runs', 'other': 'Other flags',
           'other_hint': 'any flag of the command, written as in a shell, e.g. --seed 42', 'run': 'Begin',
           'status': 'Status', 'jobs': 'Jobs of this web UI', 'stop': 'Stop the selected job', 'log': 'Log',
           'plot': 'Curves (logging.jsonl)', 'runtime': 'Runtime'},
    'zh': {'command': '命令', 'shown': '本页运行的命令', 'other': '其他参数',
           'other_hint': '命令的任意参数，按 shell 写法，例如 --seed 42', 'run': '开始',
           'status': '状态', 'jobs': '本 web-ui 启动的任务', 'stop': '停止所选任务', 'log': '日志',
           'plot': '曲线 (logging.jsonl)', 'runtime': '运行时'},
}


@dataclasses.dataclass
class Field:
    flag: str  # ms-swift's flag name, without the dashes
    default: str = ''
    choices: tuple[str, ...] = ()  # a dropdown that also takes a typed value; empty: a text box
    en: str = ''
    zh: str = ''


@dataclasses.dataclass
class Page:
    key: str  # the elem_id prefix of the tab's components
    en: str  # the tab's title, as ms-swift names it
    zh: str
    commands: tuple[str, ...]  # the swift commands the page can run; the first is the default
    fields: list[Field]
    metrics: tuple[str, ...] = ()  # logging.jsonl keys to plot


def build_page(gr, page: Page, manager: JobManager, lang: str) -> None:
    texts = TEXTS[lang]
    with gr.Tab(page.en if lang == 'en' else page.zh, id=page.key, elem_id=f'{page.key}-tab'):
        command = gr.Radio(list(page.commands), value=page.commands[0], label=texts['command'],
                           visible=len(page.commands) > 1, elem_id=f'{page.key}-command')
        inputs = _field_inputs(gr, page, lang)
        other = gr.Textbox(label=texts['other'], placeholder=texts['other_hint'], elem_id=f'{page.key}-other')
        shown = gr.Textbox(label=texts['shown'], interactive=False, elem_id=f'{page.key}-shown')
        with gr.Row():
            run = gr.Button(texts['run'], variant='primary', elem_id=f'{page.key}-run')
            status = gr.Textbox(label=texts['status'], interactive=False, elem_id=f'{page.key}-status', scale=3)
        runtime = _runtime(gr, page, texts)
    values = [command, other, *inputs]

    def preview(*values):
        return _preview(page, *values)

    def start(*values):
        return _start(page, manager, *values)

    for component in values:
        component.change(preview, values, shown, show_progress='hidden', queue=False)
    run.click(start, values, [shown, status, runtime['jobs']])
    runtime['stop'].click(lambda job_id: _stop(manager, job_id), runtime['jobs'],
                          [status, runtime['jobs']])
    refreshed = [runtime['log'], runtime['plot'], runtime['jobs'], runtime['state']]
    runtime['timer'].tick(lambda job_id, state: _refresh(page, manager, job_id, state),
                          [runtime['jobs'], runtime['state']], refreshed, show_progress='hidden')


def _field_inputs(gr, page: Page, lang: str) -> list:
    inputs = []
    for start in range(0, len(page.fields), 3):
        with gr.Row():
            for field in page.fields[start:start + 3]:
                label = f'--{field.flag}' + (f': {field.en if lang == "en" else field.zh}' if field.en else '')
                elem_id = f'{page.key}-{field.flag}'
                if field.choices:
                    inputs.append(gr.Dropdown(list(field.choices), value=field.default, label=label,
                                              allow_custom_value=True, elem_id=elem_id))
                else:
                    inputs.append(gr.Textbox(value=field.default, label=label, elem_id=elem_id))
    return inputs


def _runtime(gr, page: Page, texts: dict) -> dict:
    with gr.Accordion(texts['runtime'], open=True):
        with gr.Row():
            jobs = gr.Dropdown([], value=None, label=texts['jobs'], elem_id=f'{page.key}-jobs', scale=3)
            stop = gr.Button(texts['stop'], variant='stop', elem_id=f'{page.key}-stop')
        log = gr.Textbox(label=texts['log'], lines=12, max_lines=12, autoscroll=True, interactive=False,
                         elem_id=f'{page.key}-log')
        plot = gr.Plot(label=texts['plot'], elem_id=f'{page.key}-plot', visible=bool(page.metrics))
    return {'jobs': jobs, 'stop': stop, 'log': log, 'plot': plot, 'state': gr.State({}),
            'timer': gr.Timer(REFRESH_SECONDS)}


def _flags(page: Page, other: str, field_values) -> list[str]:
    return build_flags({f.flag: v for f, v in zip(page.fields, field_values)}, other)


def _preview(page: Page, command: str, other: str, *field_values) -> str:
    try:
        return shown_command(command, _flags(page, other, field_values))
    except SwiftError as err:
        return str(err)


def _start(page: Page, manager: JobManager, command: str, other: str, *field_values):
    """Validate the flags with the command's own parser; start the command only when they parse."""
    import gradio as gr
    try:
        flags = _flags(page, other, field_values)
        shown = shown_command(command, flags)
        args = validate(command, flags)
    except SwiftError as err:
        return gr.update(), str(err), gr.update()
    job = manager.start(command, flags, getattr(args, 'output_dir', None) or None)
    return shown, f'started job {job.id} (pid {job.process.pid})', _jobs_update(page, manager, job.id)


def _stop(manager: JobManager, job_id) -> tuple:
    import gradio as gr
    job = manager.get(job_id)
    if job is None:
        return 'select a job first', gr.update()
    manager.stop(job)
    return f'job {job.id}: {job.status}', gr.Dropdown(choices=_choices(manager), value=job.id)


def _choices(manager: JobManager) -> list[tuple[str, int]]:
    jobs = list(manager.jobs.values())  # a snapshot: another click may start a job meanwhile
    return [(job.label, job.id) for job in reversed(jobs)]


def _jobs_update(page: Page, manager: JobManager, selected: Optional[int]):
    import gradio as gr
    return gr.Dropdown(choices=_choices(manager), value=selected)


def _refresh(page: Page, manager: JobManager, job_id, state: dict):
    """The selected job's log and curves, and the jobs list; components whose content did not change are left
    alone, so that the page does not flicker (or lose an open dropdown) every second."""
    import gradio as gr
    choices = _choices(manager)
    if job_id not in {value for _, value in choices} and choices:
        # nothing picked yet: follow the newest job. A tick that began before a click started one must not put
        # the list back to "none" over the new job that the click selected.
        job_id = choices[0][1]
    job = manager.get(job_id)
    jobs = gr.Dropdown(choices=choices, value=job_id) if choices != state.get('choices') else gr.update()
    if job is None:
        return gr.update(), gr.update(), jobs, {'choices': choices}
    log = read_log(job)
    path = logging_jsonl(job)
    records = read_records(path) if path else []
    seen = (job.id, len(records))
    figure = metric_figure(records, page.metrics) if seen != state.get('plotted') else None
    new_state = {'choices': choices, 'log': log, 'plotted': seen if figure else state.get('plotted')}
    return (log if log != state.get('log') else gr.update()), figure or gr.update(), jobs, new_state
