"""``swift web-ui``: training, alignment, inference, export and evaluation from the browser.

    swift web-ui --lang en --server_port 7860

Each tab builds the ``swift ...`` command a user would type, shows it, checks its flags with the command's own
parser and runs it as a child process; the page streams its log and plots its logging.jsonl. gradio is imported
only here, so the other commands neither need it nor wait for it.
"""
from ...arguments.webui_args import WebUIArguments
from ...utils import SwiftError, get_logger
from ...utils.packages import require_extra
from ..common import to_arguments

logger = get_logger()


def web_ui_main(args: WebUIArguments | list[str] | None = None) -> None:
    args = to_arguments(WebUIArguments, args)
    require_extra('gradio', 'app', 'swift web-ui')
    from .app import build_app
    from .jobs import JobManager
    manager = JobManager()
    demo = build_app(manager, args.lang)
    logger.info(f'swift web-ui on http://{args.server_name}:{args.server_port} (job logs in {manager.log_dir})')
    try:
        demo.queue(default_concurrency_limit=None).launch(server_name=args.server_name, server_port=args.server_port,
                                                          share=args.share)
    except OSError as err:  # the port is taken, or the address is not this machine's
        reason = str(err).split('. ')[0]
        raise SwiftError(f'cannot serve on {args.server_name}:{args.server_port} ({reason}); '
                         'pick another --server_port or --server_name') from None
