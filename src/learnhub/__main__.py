from learnhub.cli import main

main()
