"""PyTorch peer for `sdpipe bench`: the SD 1.5 UNet and VAE encoder written out in plain PyTorch with
diffusers' module layout (same parameter count, same operations: SDPA attention, GEGLU, GroupNorm),
random weights, timed the way ENVIRONMENT.md's PyTorch figures were (2 threads, warm-ups, median)."""
import argparse, json, math, os, resource, statistics, sys, threading, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb=1280, eps=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(32, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    def __init__(self, dim, heads, ctx=None, bias=False):
        super().__init__()
        ctx = ctx or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(ctx, dim, bias=bias)
        self.to_v = nn.Linear(ctx, dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, n, c = x.shape
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)
        q, k, v = (t.view(b, -1, self.heads, c // self.heads).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.to_out[0](o)


class GEGLU(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(dim, dim * 8)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim), nn.Dropout(0.0), nn.Linear(dim * 4, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, ctx):
        super().__init__()
        self.norm1, self.attn1 = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.attn2 = nn.LayerNorm(dim), Attention(dim, heads, ctx)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2D(nn.Module):
    def __init__(self, dim, heads=8, ctx=768):
        super().__init__()
        self.norm = nn.GroupNorm(32, dim, eps=1e-6)
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(dim, heads, ctx)])
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        r = x
        x = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(b, h * w, c)
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        x = self.proj_out(x.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous())
        return x + r


class Down(nn.Module):
    def __init__(self, cin, cout, attn, down):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin if i == 0 else cout, cout) for i in range(2)])
        self.attentions = nn.ModuleList([Transformer2D(cout) for _ in range(2)]) if attn else None
        self.downsamplers = nn.ModuleList([nn.Conv2d(cout, cout, 3, stride=2, padding=1)]) if down else None

    def forward(self, x, temb, ctx):
        skips = []
        for i, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, ctx)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class Up(nn.Module):
    def __init__(self, cin, cout, prev, attn, up):
        super().__init__()
        self.resnets = nn.ModuleList(
            [Resnet((prev if i == 0 else cout) + (cin if i == 2 else cout), cout) for i in range(3)])
        self.attentions = nn.ModuleList([Transformer2D(cout) for _ in range(3)]) if attn else None
        self.upsamplers = nn.ModuleList([nn.Conv2d(cout, cout, 3, padding=1)]) if up else None

    def forward(self, x, skips, temb, ctx):
        for i, r in enumerate(self.resnets):
            x = r(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions is not None:
                x = self.attentions[i](x, ctx)
        if self.upsamplers is not None:
            x = self.upsamplers[0](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        ch = [320, 640, 1280, 1280]
        self.conv_in = nn.Conv2d(4, 320, 3, padding=1)
        self.time_embedding = nn.ModuleDict(dict(linear_1=nn.Linear(320, 1280), linear_2=nn.Linear(1280, 1280)))
        self.down_blocks = nn.ModuleList(
            [Down(320 if i == 0 else ch[i - 1], ch[i], attn=i < 3, down=i < 3) for i in range(4)])
        self.mid_block = nn.ModuleDict(dict(
            resnets=nn.ModuleList([Resnet(1280, 1280), Resnet(1280, 1280)]),
            attentions=nn.ModuleList([Transformer2D(1280)])))
        rev = ch[::-1]
        self.up_blocks = nn.ModuleList(
            [Up(rev[min(i + 1, 3)], rev[i], rev[i - 1] if i else 1280, attn=i > 0, up=i < 3) for i in range(4)])
        self.conv_norm_out = nn.GroupNorm(32, 320, eps=1e-5)
        self.conv_out = nn.Conv2d(320, 4, 3, padding=1)

    def forward(self, x, t, ctx):
        half = 160
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        temb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # flip_sin_to_cos
        te = self.time_embedding
        temb = te["linear_2"](F.silu(te["linear_1"](temb)))
        x = self.conv_in(x)
        skips = [x]
        for blk in self.down_blocks:
            x, s = blk(x, temb, ctx)
            skips += s
        mb = self.mid_block
        x = mb["resnets"][0](x, temb)
        x = mb["attentions"][0](x, ctx)
        x = mb["resnets"][1](x, temb)
        for blk in self.up_blocks:
            n = len(blk.resnets)
            x = blk(x, skips[-n:], temb, ctx)
            del skips[-n:]
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VaeEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        ch = [128, 256, 512, 512]
        self.conv_in = nn.Conv2d(3, 128, 3, padding=1)
        blocks = []
        for i, c in enumerate(ch):
            cin = ch[max(i - 1, 0)]
            b = nn.Module()
            b.resnets = nn.ModuleList([Resnet(cin if j == 0 else c, c, temb=0, eps=1e-6) for j in range(2)])
            b.downsamplers = nn.ModuleList([nn.Conv2d(c, c, 3, stride=2)]) if i < 3 else None
            blocks.append(b)
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_resnets = nn.ModuleList([Resnet(512, 512, temb=0, eps=1e-6) for _ in range(2)])
        self.mid_norm = nn.GroupNorm(32, 512, eps=1e-6)
        self.mid_attn = Attention(512, 1, bias=True)
        self.conv_norm_out = nn.GroupNorm(32, 512, eps=1e-6)
        self.conv_out = nn.Conv2d(512, 8, 3, padding=1)
        self.quant_conv = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            for r in b.resnets:
                x = r(x)
            if b.downsamplers is not None:
                x = b.downsamplers[0](F.pad(x, (0, 1, 0, 1)))
        x = self.mid_resnets[0](x)
        bsz, c, h, w = x.shape
        a = self.mid_norm(x).view(bsz, c, h * w).transpose(1, 2)
        x = x + self.mid_attn(a).transpose(1, 2).view(bsz, c, h, w)
        x = self.mid_resnets[1](x)
        return self.quant_conv(self.conv_out(F.silu(self.conv_norm_out(x))))


def peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class AnonymousPeak:
    """The highest RssAnon + RssShmem of /proc/self/status, sampled every millisecond on a thread, as `sdpipe bench`
    samples its own ("peak anon"): peak RSS also counts the libraries' file pages, whose residency depends on the page
    cache. It costs ~3% of one core (Python, measured on an Intel Xeon), more than `sdpipe`'s sampler, so it runs only
    with --anonymous-peak and times are taken without it. The GIL can delay a sample while Python code runs."""

    def __init__(self):
        self.peak = 0
        self._fd = os.open("/proc/self/status", os.O_RDONLY)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self):
        text = os.pread(self._fd, 8192, 0)
        anon, shmem = text.index(b"RssAnon:"), text.index(b"RssShmem:")
        return (int(text[anon + 8:text.index(b"kB", anon)]) + int(text[shmem + 9:text.index(b"kB", shmem)])) * 1024

    def _run(self):
        while not self._stop:
            sample = self._sample()
            if sample > self.peak:
                self.peak = sample
            time.sleep(0.001)

    def stop_gib(self):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, self._sample())
        return self.peak / 2**30


def timed(fn, warmups, repeats):
    for _ in range(warmups):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return ts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["matmul", "train-step", "unet", "vae"])
    p.add_argument("--mkldnn", choices=["on", "off"], default="on")
    p.add_argument("--fused", choices=["on", "off"], default="on")
    p.add_argument("--size", type=int, default=32, help="latent size (unet/train-step) or pixels/8 (vae)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--optimizer-in-backward", action="store_true",
                   help="train-step: one fused AdamW per parameter, stepped from its post-accumulate-grad hook and the "
                        "gradient freed there (PyTorch's 'optimizer step in backward' recipe; no global gradient clipping)")
    p.add_argument("--max-grad-norm", type=float, default=0,
                   help="train-step: clip_grad_norm_(foreach=True) to this before AdamW, as diffusers' script with accelerate")
    p.add_argument("--ema", nargs="?", const="foreach", choices=["foreach", "lerp"],
                   help="train-step: after AdamW, an EMA of the weights at diffusers' decay: foreach (the default) is "
                        "EMAModel.step's foreach path (train_text_to_image.py --foreach_ema), lerp torch.optim.swa_utils' "
                        "update (_foreach_lerp_: one pass, no temporaries, other rounding)")
    p.add_argument("--autocast", choices=["no", "bf16"], default="no",
                   help="train-step: forward and loss under torch.autocast('cpu', bfloat16), as train.mixed_precision=bf16")
    p.add_argument("--channels-last", action="store_true",
                   help="model and input in torch.channels_last (oneDNN's NHWC convolutions, no layout reorders)")
    p.add_argument("--compile", action="store_true",
                   help="run the model through torch.compile (inductor's C++ kernels; needs g++, python3-setuptools and "
                        "libtorch-dev beside Debian's python3-torch); the first warm-up includes the compilation")
    p.add_argument("--warmups", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--whole-vae", action="store_true",
                   help="vae: also hold the decoder's weights (49,490,199 parameters, as diffusers' AutoencoderKL does; unused by encode)")
    p.add_argument("--anonymous-peak", action="store_true",
                   help="also report peak_anonymous_gib, sampled every millisecond (costs ~3%% of one core: not for times)")
    a = p.parse_args()
    anonymous = AnonymousPeak() if a.anonymous_peak else None
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    torch.backends.mkldnn.enabled = a.mkldnn == "on"
    torch.manual_seed(0)
    out = dict(case=a.case, torch=torch.__version__, threads=torch.get_num_threads(), mkldnn=a.mkldnn,
               size=a.size, batch=a.batch, channels_last=a.channels_last, compile=a.compile)
    layout = torch.channels_last if a.channels_last else torch.contiguous_format
    if a.case == "matmul":
        x, y = torch.randn(4096, 4096), torch.randn(4096, 4096)
        ts = timed(lambda: x @ y, 1, 5)
    elif a.case == "train-step":
        unet = UNet().to(memory_format=layout)
        out["parameters"] = sum(q.numel() for q in unet.parameters())
        forward = torch.compile(unet) if a.compile else unet
        if a.optimizer_in_backward:
            per_parameter = {q: torch.optim.AdamW([q], lr=1e-5, fused=a.fused == "on") for q in unet.parameters()}

            def step_in_backward(q):
                per_parameter[q].step()
                q.grad = None
            for q in unet.parameters():
                q.register_post_accumulate_grad_hook(step_in_backward)

            class _Nothing:
                def zero_grad(self, set_to_none=True): pass
                def step(self): pass
            opt = _Nothing()
        else:
            opt = torch.optim.AdamW(unet.parameters(), lr=1e-5, fused=a.fused == "on")
        out["fused"] = a.fused
        out["optimizer_in_backward"] = a.optimizer_in_backward
        out["autocast"] = a.autocast
        out["max_grad_norm"] = a.max_grad_norm
        out["ema"] = a.ema
        trained = [q for q in unet.parameters() if q.requires_grad]
        shadow = [q.detach().clone() for q in trained] if a.ema else None
        ema_steps = [0]

        def ema_step():
            # diffusers' EMAModel.get_decay (no warm-up, update_after_step 0) and its foreach update.
            ema_steps[0] += 1
            step = max(0, ema_steps[0] - 1)
            decay = 0.0 if step <= 0 else min((1 + step) / (10 + step), 0.9999)
            with torch.no_grad():
                if a.ema == "lerp":
                    torch._foreach_lerp_(shadow, trained, 1 - decay)
                else:
                    torch._foreach_sub_(shadow, torch._foreach_sub(shadow, trained), alpha=1 - decay)
        x = torch.randn(a.batch, 4, a.size, a.size).to(memory_format=layout); ctx = torch.randn(a.batch, 77, 768)
        t = torch.full((a.batch,), 500); target = torch.randn_like(x)
        phases = []

        def step():
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast == "bf16"):
                prediction = forward(x, t, ctx)
            loss = F.mse_loss(prediction.float(), target)
            t1 = time.perf_counter(); loss.backward(); t2 = time.perf_counter()
            if a.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trained, a.max_grad_norm, foreach=True)
            tc = time.perf_counter(); opt.step(); t3 = time.perf_counter()
            if shadow is not None:
                ema_step()
            t4 = time.perf_counter()
            phases.append((t1 - t0, t2 - t1, tc - t2, t3 - tc, t4 - t3))
        t0 = time.perf_counter(); step(); out["warmup_step_s"] = time.perf_counter() - t0
        ts = timed(step, a.warmups - 1, a.repeats)
        fwd, bwd, clip, adam, ema = zip(*phases[-a.repeats:])
        out.update(forward_s=statistics.median(fwd), backward_s=statistics.median(bwd), clip_s=statistics.median(clip),
                   adamw_s=statistics.median(adam), ema_s=statistics.median(ema))
    elif a.case == "unet":
        unet = UNet().eval().to(memory_format=layout)
        unet = torch.compile(unet) if a.compile else unet
        x = torch.randn(a.batch, 4, a.size, a.size).to(memory_format=layout); ctx = torch.randn(a.batch, 77, 768); t = torch.full((a.batch,), 500)
        with torch.no_grad():
            ts = timed(lambda: unet(x, t, ctx), a.warmups, a.repeats)
    else:
        enc = VaeEncoder().eval().to(memory_format=layout)
        enc = torch.compile(enc) if a.compile else enc
        decoder_weights = torch.randn(49_490_199) if a.whole_vae else None
        out["whole_vae"] = a.whole_vae
        x = torch.randn(a.batch, 3, a.size * 8, a.size * 8).to(memory_format=layout)
        out["parameters"] = sum(q.numel() for q in enc.parameters())
        with torch.no_grad():
            ts = timed(lambda: enc(x), a.warmups, a.repeats)
    out.update(times_s=ts, median_s=statistics.median(ts), peak_rss_gib=round(peak_gib(), 2))
    if anonymous is not None:
        out["peak_anonymous_gib"] = round(anonymous.stop_gib(), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
