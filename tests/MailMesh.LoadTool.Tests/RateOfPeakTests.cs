namespace MailMesh.LoadTool.Tests;

/// <summary>
/// "--rate 80%": a peak run first, then the paced run at that share of the peak's end-to-end rate, both in one
/// invocation, so the share holds on the machine as it is at that moment (its speed moves within the hour).
/// </summary>
public sealed class RateOfPeakTests
{
    [Fact]
    public void A_percentage_is_a_share_of_the_peak_and_a_number_is_messages_per_second()
    {
        var share = LoadOptions.Parse(["--rate", "80%", "--connections", "40", "--messages", "9000"]);
        Assert.Equal(0.8, share.RateOfPeak);
        Assert.Null(share.Rate);

        var fixedRate = LoadOptions.Parse(["--rate", "740"]);
        Assert.Equal(740, fixedRate.Rate);
        Assert.Null(fixedRate.RateOfPeak);

        // The last --rate given wins, as for every other option.
        Assert.Null(LoadOptions.Parse(["--rate", "80%", "--rate", "700"]).RateOfPeak);
        Assert.Null(LoadOptions.Parse(["--rate", "700", "--rate", "80%"]).Rate);
    }

    [Fact]
    public void The_peak_run_goes_at_full_speed_with_the_documented_size_and_the_same_warm_up()
    {
        var options = LoadOptions.Parse(["--target", "distributed", "--rate", "80%", "--connections", "40", "--messages", "9000", "--warmup", "3000"]);

        var peak = options.PeakRun();

        Assert.Null(peak.Rate);
        Assert.Null(peak.RateOfPeak);
        Assert.Equal(3000, peak.Messages);
        Assert.Equal(20, peak.Connections);
        Assert.Equal(3000, peak.Warmup);
        Assert.Equal("distributed", peak.Target);
    }

    [Fact]
    public void The_paced_run_goes_at_the_share_of_the_peak_with_its_own_size()
    {
        var options = LoadOptions.Parse(["--rate", "80%", "--connections", "40", "--messages", "9000", "--warmup", "3000"]);

        var paced = options.PacedRun(peakEndToEnd: 836.4);

        Assert.Equal(669.1, paced.Rate);
        Assert.Null(paced.RateOfPeak);
        Assert.Equal(9000, paced.Messages);
        Assert.Equal(40, paced.Connections);
        Assert.Equal(3000, paced.Warmup);
    }

    [Fact]
    public void A_peak_that_delivered_nothing_gives_no_rate()
    {
        var options = LoadOptions.Parse(["--rate", "80%"]);

        Assert.Throws<ArgumentException>(() => options.PacedRun(0));
        Assert.Throws<ArgumentException>(() => options.PacedRun(double.NaN));
        Assert.Throws<InvalidOperationException>(() => LoadOptions.Parse(["--rate", "700"]).PacedRun(800));
    }

    [Theory]
    [InlineData("0%")]
    [InlineData("150%")]
    [InlineData("-5%")]
    [InlineData("NaN%")]
    public void A_share_outside_0_to_100_percent_is_refused_naming_the_option(string value)
    {
        var error = Assert.Throws<ArgumentException>(() => LoadOptions.Parse(["--rate", value]));
        Assert.Contains("--rate N%", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_share_is_not_taken_with_smtp_source_or_a_Postfix_comparison()
    {
        Assert.Contains("--rate", Assert.Throws<ArgumentException>(() => LoadOptions.Parse(["--rate", "80%", "--smtp-source"])).Message, StringComparison.Ordinal);
        Assert.Contains("--rate", Assert.Throws<ArgumentException>(() => LoadOptions.Parse(["--rate", "80%", "--compare-postfix"])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_share_that_is_not_a_number_is_a_format_error()
    {
        Assert.Throws<FormatException>(() => LoadOptions.Parse(["--rate", "abc%"]));
    }
}
