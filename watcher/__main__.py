from watcher.cli.main import main

raise SystemExit(main())
