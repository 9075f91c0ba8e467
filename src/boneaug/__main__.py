from boneaug.cli import main

main()
