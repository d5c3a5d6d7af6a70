import sys

from .host.commands.main import main

sys.exit(main())
