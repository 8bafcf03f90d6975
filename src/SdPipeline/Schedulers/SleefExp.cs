namespace SdPipeline.Schedulers;

/// <summary>
/// eˣ in float32 exactly as PyTorch's CPU <c>torch.exp</c> computes it (SLEEF's <c>expf_u10</c>, which ATen's
/// vectorised kernels call, even for a 0-d tensor). It is accurate to 1 ulp but not always correctly rounded, so
/// <see cref="MathF.Exp"/> differs in the last bit for a few arguments; DPM-Solver's step coefficients use it to
/// reproduce diffusers' samples bit for bit (the 50-step reference loop differs otherwise from step 10 on).
/// </summary>
internal static class SleefExp
{
    private const float Log2E = 1.442695040888963407359924681001892137426645954152985934135449406931f;
    // ln 2 split into a high part with trailing zero bits and the remainder (Cody–Waite reduction).
    private const float Ln2Upper = 0.693145751953125f;
    private const float Ln2Lower = 1.428606765330187045e-06f;

    public static float Exp(float d)
    {
        if (float.IsNaN(d))
            return d;
        if (d < -104f)
            return 0f;
        if (d > 104f)
            return float.PositiveInfinity;

        // d = q·ln 2 + s with |s| ≤ ln 2 / 2
        int q = (int)MathF.Round(d * Log2E, MidpointRounding.ToEven);
        float s = MathF.FusedMultiplyAdd(q, -Ln2Upper, d);
        s = MathF.FusedMultiplyAdd(q, -Ln2Lower, s);

        // e^s ≈ 1 + s + s²·P(s)
        float u = 0.000198527617612853646278381f;
        u = MathF.FusedMultiplyAdd(u, s, 0.00139304355252534151077271f);
        u = MathF.FusedMultiplyAdd(u, s, 0.00833336077630519866943359f);
        u = MathF.FusedMultiplyAdd(u, s, 0.0416664853692054748535156f);
        u = MathF.FusedMultiplyAdd(u, s, 0.166666671633720397949219f);
        u = MathF.FusedMultiplyAdd(u, s, 0.5f);
        u = 1.0f + MathF.FusedMultiplyAdd(s * s, u, s);

        // × 2^q in two halves, as SLEEF's ldexp2 does, so that neither factor overflows
        int half = q >> 1;
        return u * MathF.ScaleB(1f, half) * MathF.ScaleB(1f, q - half);
    }
}
