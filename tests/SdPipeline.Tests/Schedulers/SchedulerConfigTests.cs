using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

public sealed class SchedulerConfigTests
{
    [Test]
    public void Load_Should_ReadSd15ShippedConfig_When_TimestepSpacingIsAbsent()
    {
        // Given SD 1.5's scheduler_config.json (diffusers 0.6.0 key set)
        string path = Path.Combine(RepoPaths.Fixtures, "sd15-keys", "scheduler", "scheduler_config.json");

        // When it is loaded
        var config = SchedulerConfig.Load(path);

        // Then every value is read and the absent keys stay "class default"
        Assert.That(config.ClassName, Is.EqualTo("PNDMScheduler"));
        Assert.That(config.NumTrainTimesteps, Is.EqualTo(1000));
        Assert.That(config.BetaStart, Is.EqualTo(0.00085));
        Assert.That(config.BetaEnd, Is.EqualTo(0.012));
        Assert.That(config.BetaSchedule, Is.EqualTo("scaled_linear"));
        Assert.That(config.TrainedBetas, Is.Null);
        Assert.That(config.StepsOffset, Is.EqualTo(1));
        Assert.That(config.SkipPrkSteps, Is.True);
        Assert.That(config.SetAlphaToOne, Is.False);
        Assert.That(config.ClipSample, Is.False);
        Assert.That(config.PredictionType, Is.EqualTo("epsilon"));
        Assert.That(config.TimestepSpacing, Is.Null);
        Assert.That(config.UnrecognisedKeys, Is.Empty);
        Assert.That(config.Source, Is.EqualTo(path));
        Assert.That(SchedulerFactory.ShippedName(config), Is.EqualTo(SchedulerFactory.Pndm));
    }

    [Test]
    public void Load_Should_ReadFilledInConfig_When_DiffusersWroteEveryDefault()
    {
        var config = SchedulerConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "scheduler.full", "scheduler_config.json"));

        Assert.That(config.TimestepSpacing, Is.EqualTo("leading"));
        Assert.That(config.DiffusersVersion, Is.EqualTo("0.40.0.dev0"));
    }

    [Test]
    public void Parse_Should_ListUnknownKeys_When_TheyDoNotAffectComputation()
    {
        var config = SchedulerConfig.Parse("""{ "beta_schedule": "linear", "some_future_option": 3, "_use_default_values": ["x"] }""");

        Assert.That(config.UnrecognisedKeys, Is.EquivalentTo(new[] { "some_future_option" }));
    }

    // SD 1.5's scheduler loaded as DDIM and saved by diffusers 0.18, which listed the keys DDIM filled with its own defaults.
    private const string DdimSavedByDiffusers018 = """
        {
          "_class_name": "DDIMScheduler",
          "_diffusers_version": "0.18.2",
          "_use_default_values": ["timestep_spacing", "thresholding", "dynamic_thresholding_ratio", "clip_sample_range", "sample_max_value", "rescale_betas_zero_snr"],
          "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "clip_sample_range": 1.0,
          "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": 1000, "prediction_type": "epsilon", "rescale_betas_zero_snr": false,
          "sample_max_value": 1.0, "set_alpha_to_one": false, "steps_offset": 1, "thresholding": false, "timestep_spacing": "leading",
          "trained_betas": null
        }
        """;

    [Test]
    public void Parse_Should_LeaveTheKeysOfUseDefaultValuesToTheClassDefault_As_DiffusersFromConfigDoes()
    {
        // Given a DDIM config whose "timestep_spacing": "leading" is listed as DDIM's own default
        var config = SchedulerConfig.Parse(DdimSavedByDiffusers018, "m/scheduler/scheduler_config.json");

        // When Euler samples with it (diffusers: EulerDiscreteScheduler.from_config drops the listed keys)
        using var scope = NewDisposeScope();
        using var euler = new EulerDiscreteScheduler(config);
        euler.SetTimesteps(50);

        // Then Euler uses its own default, linspace: 999.0 … 0.0 from σ_max (not leading's 981 … 1 from √(σ_max² + 1))
        Assert.That(config.TimestepSpacing, Is.Null);
        Assert.That(MaxAbsDiff(euler.Timesteps, Tensors.Get("euler_epsilon_50.timesteps")), Is.LessThanOrEqualTo(FloatTimestepAtol));
        Assert.That(euler.InitNoiseSigma, Is.EqualTo(14.6146).Within(1e-4));
        // and a key the file did not list keeps its written value
        Assert.That(config.SetAlphaToOne, Is.False);
        Assert.That(config.StepsOffset, Is.EqualTo(1));
        Assert.That(config.UnrecognisedKeys, Is.Empty);
    }

    [Test]
    public void Parse_Should_NameTheKey_When_UseDefaultValuesIsNotAListOfNames()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse("""{ "_use_default_values": "timestep_spacing" }""", "m/scheduler_config.json"))!;

        Assert.That(error.Message, Does.StartWith("m/scheduler_config.json").And.Contain("_use_default_values must be a list"));
    }

    [Test]
    public void Parse_Should_ReadNegativeInfinity_When_DiffusersWroteLambdaMinClipped()
    {
        var config = SchedulerConfig.Parse("""{ "lambda_min_clipped": -Infinity, "variance_type": null, "timestep_spacing": null }""");

        Assert.That(config.LambdaMinClipped, Is.EqualTo(double.NegativeInfinity));
        Assert.That(config.VarianceType, Is.Null);
        Assert.That(config.TimestepSpacing, Is.Null);
    }

    [Test]
    public void Parse_Should_ListValidSchedules_When_BetaScheduleIsUnknown()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse("""{ "beta_schedule": "cosine" }""", "model/scheduler/scheduler_config.json"))!;

        Assert.That(error.Message, Does.Contain("model/scheduler/scheduler_config.json").And.Contain("beta_schedule 'cosine'")
            .And.Contain("linear, scaled_linear, squaredcos_cap_v2"));
    }

    [Test]
    public void Parse_Should_ListValidTypes_When_PredictionTypeIsUnknown()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse("""{ "prediction_type": "sample" }"""))!;

        Assert.That(error.Message, Does.Contain("prediction_type 'sample'").And.Contain("epsilon, v_prediction"));
    }

    [Test]
    public void Parse_Should_ListValidSpacings_When_TimestepSpacingIsUnknown()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse("""{ "timestep_spacing": "uniform" }"""))!;

        Assert.That(error.Message, Does.Contain("timestep_spacing 'uniform'").And.Contain("leading, linspace, trailing"));
    }

    [Test]
    public void Parse_Should_NameTheSource_When_AValueHasTheWrongType()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse("""{ "num_train_timesteps": "many" }""", "x/scheduler_config.json"))!;

        Assert.That(error.Message, Does.StartWith("x/scheduler_config.json").And.Contain("num_train_timesteps"));
    }

    [Test]
    public void Parse_Should_Refuse_When_TrainedBetasDisagreeWithTheStepCount()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse("""{ "num_train_timesteps": 3, "trained_betas": [0.1, 0.2] }"""))!;

        Assert.That(error.Message, Does.Contain("trained_betas has 2 values").And.Contain("num_train_timesteps is 3"));
    }

    [Test]
    public void Load_Should_SayWhereTheFileBelongs_When_ItIsMissing()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Load("/nowhere/scheduler_config.json"))!;

        Assert.That(error.Message, Does.Contain("/nowhere/scheduler_config.json").And.Contain("scheduler/scheduler_config.json"));
    }
}
