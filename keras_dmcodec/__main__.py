import sys

from keras_dmcodec.cli import main

sys.exit(main())
