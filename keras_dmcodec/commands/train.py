"""``dmcodec train``: the training entry point (``python -m training.train``) as a subcommand."""


def register(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a codec from a JSON config (see training/configs)")
    parser.add_argument("--config", required=True, help="training config (JSON)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --out")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.set_defaults(handler=run)


def run(args):
    from training.train import main

    argv = ["--config", args.config, "--out", args.out]
    if args.resume:
        argv.append("--resume")
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    return main(argv)
