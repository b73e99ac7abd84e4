"""Hugging Face Space entry point of the AV-CPNet emotion demo; locally: `python app.py --model path/to/checkpoint`.

The model is `--model`, else the `AVCPNET_MODEL` environment variable, else the `model/` folder next to this file
(a checkpoint folder with the model and processor files, e.g. one written by `train_hf.py` or `save_for_pipeline`;
a Hub id works too when the machine is online). The app itself is `modeling_avcpnet.apps.demo`, the same as
`avcpnet demo`: this file only reads the Space's settings. It binds 127.0.0.1 unless `GRADIO_SERVER_NAME` (set to
0.0.0.0 by Spaces) or `--host` says otherwise.
"""

import argparse
import os

from modeling_avcpnet.inference.loading import load_pipeline
from modeling_avcpnet.apps.demo import DemoSettings, build_demo, launch_demo, make_examples, use_private_upload_folder

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("AVCPNET_MODEL", os.path.join(HERE, "model")))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--max_upload_mb", type=float, default=float(os.environ.get("AVCPNET_MAX_UPLOAD_MB", "50")))
    parser.add_argument("--max_duration_s", type=float, default=float(os.environ.get("AVCPNET_MAX_DURATION_S", "600")))
    parser.add_argument("--no_examples", action="store_true")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (not on a Space)")
    args = parser.parse_args()
    use_private_upload_folder()
    pipe = load_pipeline(args.model)
    settings = DemoSettings(max_upload_mb=args.max_upload_mb, max_duration_s=args.max_duration_s)
    demo = build_demo(pipe, settings, examples=None if args.no_examples else make_examples())
    launch_demo(demo, host=args.host, port=args.port, share=args.share)


if __name__ == "__main__":
    main()
