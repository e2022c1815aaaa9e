"""``dmcodec train``: the training entry point (``python -m training.train``) as a subcommand."""


def register(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a codec from a JSON config (see training/configs)")
    parser.add_argument("--config", required=True, help="training config (JSON)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --out")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                        help="1 progress bar, 2 one line per epoch (logs), 0 silent")
    parser.set_defaults(handler=run)


def run(args):
    from training.train import main

    argv = ["--config", args.config, "--out", args.out]
    if args.resume:
        argv.append("--resume")
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    if args.verbose is not None:
        argv += ["--verbose", str(args.verbose)]
    return main(argv)
