"""Runs ``export_codec`` in a TensorFlow-backend process: ``python -m keras_dmcodec.export.worker
'<json args>'`` (started by ``export_codec`` under the JAX or torch backend)."""

import json
import os
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ["KERAS_BACKEND"] = "tensorflow"
    from keras_dmcodec.export import _export_here

    try:
        _export_here(**json.loads(argv[0]))
    except (ValueError, TypeError, OSError) as err:
        print(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
