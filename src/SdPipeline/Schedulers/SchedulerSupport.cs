using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>Timestep grids, timestep arguments and step noise, shared by the scheduler classes.</summary>
internal static class SchedulerSupport
{
    /// <summary>Rejects a step count diffusers would reject, or that cannot give distinct timesteps.</summary>
    public static void CheckStepCount(int numInferenceSteps, int numTrainTimesteps)
    {
        if (numInferenceSteps < 1 || numInferenceSteps > numTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps,
                $"the number of inference steps must be between 1 and num_train_timesteps ({numTrainTimesteps})");
    }

    /// <summary>
    /// The descending integer timesteps of DDPM, DDIM and PNDM (diffusers' <c>set_timesteps</c> of those classes):
    /// <c>leading</c> = i·⌊N/n⌋ + steps_offset, <c>linspace</c> = round(linspace(0, N−1, n)),
    /// <c>trailing</c> = round(arange(N, 0, −N/n)) − 1.
    /// </summary>
    public static long[] IntegerTimesteps(string spacing, int numInferenceSteps, SchedulerConfig config)
    {
        int n = numInferenceSteps;
        int trainSteps = config.NumTrainTimesteps;
        long[] timesteps = spacing switch
        {
            "linspace" => NumpyGrid.Linspace(0, trainSteps - 1, n).Select(t => (long)NumpyGrid.Round(t)).Reverse().ToArray(),
            "leading" => Enumerable.Range(0, n).Select(i => (long)i * (trainSteps / n) + config.StepsOffset).Reverse().ToArray(),
            "trailing" => NumpyGrid.Arange(trainSteps, 0, -(double)trainSteps / n).Select(t => (long)NumpyGrid.Round(t) - 1).ToArray(),
            _ => throw UnknownSpacing(spacing),
        };
        CheckRange(timesteps.Select(t => (double)t), spacing, n, config);
        return timesteps;
    }

    /// <summary>
    /// DDPM's and DDIM's <c>set_timesteps</c>: checks the step count, disposes <paramref name="previous"/> and gives the
    /// <see cref="IntegerTimesteps"/> grid as an int64 tensor outside any dispose scope.
    /// </summary>
    public static Tensor ReplaceIntegerTimesteps(Tensor? previous, string spacing, int numInferenceSteps, SchedulerConfig config)
    {
        CheckStepCount(numInferenceSteps, config.NumTrainTimesteps);
        var timesteps = IntegerTimesteps(spacing, numInferenceSteps, config);
        previous?.Dispose();
        return tensor(timesteps, ScalarType.Int64).DetachFromDisposeScope();
    }

    /// <summary>
    /// The descending float timesteps of the Euler samplers: <c>linspace</c> = linspace(0, N−1, n) unrounded,
    /// <c>leading</c> and <c>trailing</c> as <see cref="IntegerTimesteps"/> but in float32.
    /// </summary>
    public static float[] FloatTimesteps(string spacing, int numInferenceSteps, SchedulerConfig config)
    {
        int n = numInferenceSteps;
        int trainSteps = config.NumTrainTimesteps;
        float[] timesteps = spacing switch
        {
            "linspace" => NumpyGrid.Linspace(0, trainSteps - 1, n).Select(t => (float)t).Reverse().ToArray(),
            // np.float32 array += steps_offset / -= 1 happen in float32.
            "leading" => Enumerable.Range(0, n).Select(i => (float)((long)i * (trainSteps / n)) + config.StepsOffset).Reverse().ToArray(),
            "trailing" => NumpyGrid.Arange(trainSteps, 0, -(double)trainSteps / n).Select(t => (float)NumpyGrid.Round(t) - 1f).ToArray(),
            _ => throw UnknownSpacing(spacing),
        };
        CheckRange(timesteps.Select(t => (double)t), spacing, n, config);
        return timesteps;
    }

    /// <summary>Every timestep must index the training tables; diffusers would wrap a negative one around or fail later.</summary>
    public static void CheckRange(IEnumerable<double> timesteps, string spacing, int numInferenceSteps, SchedulerConfig config)
    {
        foreach (double t in timesteps)
            if (t < 0 || t > config.NumTrainTimesteps - 1)
                throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps,
                    $"{config.Source}: timestep_spacing '{spacing}' with steps_offset {config.StepsOffset} and {numInferenceSteps} steps " +
                    $"gives timestep {t}, outside 0 … {config.NumTrainTimesteps - 1}; use fewer steps or another spacing");
    }

    /// <summary>The integer value of a timestep argument (a 0-d or one-element tensor holding a whole number).</summary>
    public static long ToInt64(Tensor timestep)
    {
        if (timestep.numel() != 1)
            throw new ArgumentException($"a timestep is one value; got a tensor of shape [{string.Join(", ", timestep.shape)}]", nameof(timestep));
        double value = timestep.to_type(ScalarType.Float64).item<double>();
        if (value != Math.Floor(value))
            throw new ArgumentException($"this scheduler takes integer timesteps; got {value}", nameof(timestep));
        return (long)value;
    }

    /// <summary>
    /// The index of <paramref name="timestep"/> in <paramref name="schedule"/>. With <paramref name="secondOfTwo"/>
    /// (diffusers' <c>index_for_timestep</c>) a value that occurs twice gives its second index, so that starting
    /// mid-schedule, as image-to-image does, skips no sigma; otherwise the first.
    /// </summary>
    public static int IndexOf(Tensor schedule, Tensor timestep, bool secondOfTwo = true)
    {
        using var scope = NewDisposeScope();
        var matches = (schedule == timestep.to(schedule.device).to_type(schedule.dtype).reshape(-1)[0]).nonzero();
        long count = matches.shape[0];
        if (count == 0)
            throw new ArgumentException($"timestep {timestep.to_type(ScalarType.Float64).item<double>()} is not one of the scheduler's timesteps; pass the elements of Timesteps", nameof(timestep));
        return (int)matches[secondOfTwo && count > 1 ? 1 : 0, 0].item<long>();
    }

    /// <summary>
    /// The standard-normal draw of a stochastic step: <paramref name="noise"/> when given, else
    /// <c>randn(like.shape)</c> from <paramref name="generator"/> on the generator's device (diffusers' <c>randn_tensor</c>).
    /// </summary>
    public static Tensor DrawNoise(Tensor like, torch.Generator? generator, Tensor? noise)
    {
        if (noise is not null && generator is not null)
            throw new ArgumentException("pass either a generator or the noise to use, not both");
        if (noise is not null)
        {
            if (!noise.shape.SequenceEqual(like.shape))
                throw new ArgumentException($"the noise has shape [{string.Join(", ", noise.shape)}] but the sample has [{string.Join(", ", like.shape)}]", nameof(noise));
            return noise.to(like.device).to_type(like.dtype);
        }
        var device = generator?.device ?? like.device;
        return randn(like.shape, like.dtype, device, generator: generator).to(like.device);
    }

    private static ArgumentException UnknownSpacing(string spacing) =>
        new($"timestep_spacing '{spacing}' is not supported; valid values: {string.Join(", ", SchedulerConfig.TimestepSpacings)}");
}
