"""``python -m service.cli``: how ``hearth run`` starts its child processes."""

from service.cli.app import main

main()
