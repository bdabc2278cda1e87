from edgetailor.cli import main

main()
