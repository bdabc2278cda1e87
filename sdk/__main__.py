from edgetailor.cli.main import main

main()
