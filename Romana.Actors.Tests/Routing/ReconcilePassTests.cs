using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Tests.Routing;

/// <summary>The operations of a reconcile pass, and the EC2 errors they may meet, as they would come out of a plan.</summary>
internal static class PassFixture
{
    public static readonly DateTimeOffset Now = DateTimeOffset.UnixEpoch;
    public static readonly Ipv4Cidr S1 = Ipv4Cidr.Parse("100.64.0.0/24");
    public static readonly NodeName A1 = new("a1");
    public static readonly NodeName A2 = new("a2");

    public static readonly RouteOperation.DisableSourceDestCheck Check = new(A1, "eni-a1");
    public static readonly RouteOperation.Create Create = new("rtb-x", S1, A1, "eni-a1", false, "plan");
    public static readonly RouteOperation.Create Recreate = new("rtb-x", S1, A1, "eni-a1", true, "drift repair");
    public static readonly RouteOperation.Replace Replace = new("rtb-x", S1, A2, A1, "eni-a1", "failover");
    public static readonly RouteOperation.Delete Delete = new("rtb-x", S1, A1, true, "plan");
    public static readonly RouteOperation.Delete Gone = new("rtb-x", S1, A1, false, "already gone from EC2");
    public static readonly RouteOperation.Confirm Confirm = new("rtb-x", S1, A1, "eni-a1", "created before the manager restarted");
    public static readonly RouteOperation.DropClaim Drop = new("rtb-x", S1, "exists with target eni-z, which Romana did not set");

    /// <summary>rtb-x as described: the VPC's local route (not counted), a foreign default route and one of Romana's.</summary>
    public static readonly Ec2RouteTable Described = new("rtb-x", [],
        [new Ec2Route("10.0.0.0/16", "local"), new Ec2Route("0.0.0.0/0", "igw-1"), new Ec2Route("100.64.1.0/24", "eni-b1")]);

    /// <summary>A planned pass, at <paramref name="operation"/> (after a source/dest check), on its <paramref name="attempt"/>.</summary>
    public static ReconcilePass At(RouteOperation operation, int attempt = 0) =>
        ReconcilePass.Start("periodic check").Described([Described]).Planned([Check, operation]).Advanced() with { Attempt = attempt };
}

public class ReconcilePassTests
{
    private static readonly DateTimeOffset Now = PassFixture.Now;

    [Fact]
    public void A_pass_waits_for_the_cluster_first_and_its_view_names_each_wait()
    {
        var pass = ReconcilePass.Start("route manager started");
        Assert.Equal(PassWait.Cluster, pass.WaitingFor);
        Assert.Equal("cluster", pass.WaitingForName);
        Assert.Equal("ec2", (pass with { WaitingFor = PassWait.Ec2 }).WaitingForName);
        Assert.Equal("retry", pass.RetryScheduled(1).WaitingForName);
        Assert.Null(pass.Described([]).WaitingForName);
    }

    [Fact]
    public void Planning_counts_the_routes_of_each_table_that_are_not_local_and_starts_at_the_first_operation()
    {
        var pass = ReconcilePass.Start("plan").Described([PassFixture.Described]).Planned([PassFixture.Check, PassFixture.Create]);
        Assert.Equal(2, pass.RouteCounts["rtb-x"]);
        Assert.Equal(PassFixture.Check, pass.Current);
        Assert.Equal(PassFixture.Create, pass.Advanced().Current);
        Assert.Null(pass.Advanced().Advanced().Current);
    }

    [Theory]
    [InlineData("budget", "budget")]
    [InlineData("periodic check", "plan")]
    [InlineData("failover", "plan")]
    public void The_operations_of_a_pass_carry_budget_when_it_fits_a_learned_limit_and_plan_otherwise(string reason, string expected)
    {
        Assert.Equal(expected, ReconcilePass.Start(reason).OperationReason);
    }

    [Fact]
    public void Moving_on_to_the_next_operation_starts_its_call_at_the_first_attempt()
    {
        var pass = PassFixture.At(PassFixture.Create, attempt: 4).Advanced();
        Assert.Equal(0, pass.Attempt);
        Assert.Equal(2, pass.Next);
    }

    [Fact]
    public void Operations_that_need_no_call_are_recorded_and_the_pass_moves_on()
    {
        Assert.Equal<IRouteEvent>(
            [new RouteCreated("rtb-x", PassFixture.S1, PassFixture.A1, "eni-a1", Now, "created before the manager restarted")],
            Assert.IsType<PassStep.RecordThenAdvance>(PassFixture.At(PassFixture.Confirm).NextStep(Now)).Events);
        Assert.Equal<IRouteEvent>(
            [new RouteClaimDropped("rtb-x", PassFixture.S1, Now, "exists with target eni-z, which Romana did not set")],
            Assert.IsType<PassStep.RecordThenAdvance>(PassFixture.At(PassFixture.Drop).NextStep(Now)).Events);
        Assert.Equal<IRouteEvent>([new RouteDeleted("rtb-x", PassFixture.S1, PassFixture.A1, Now, "already gone from EC2")],
            Assert.IsType<PassStep.RecordThenAdvance>(PassFixture.At(PassFixture.Gone).NextStep(Now)).Events);
    }

    [Fact]
    public void A_new_route_is_claimed_before_its_create_is_sent_and_a_route_already_romanas_is_not_claimed_again()
    {
        var create = Assert.IsType<PassStep.CallEc2>(PassFixture.At(PassFixture.Create).NextStep(Now));
        Assert.Equal<IRouteEvent>([new RouteClaimed("rtb-x", PassFixture.S1, PassFixture.A1, "eni-a1", Now, "plan")], create.RecordFirst);
        Assert.Equal(new Ec2Request.Operate(PassFixture.Create), create.Request);

        var recreate = Assert.IsType<PassStep.CallEc2>(PassFixture.At(PassFixture.Recreate).NextStep(Now));
        Assert.Empty(recreate.RecordFirst);
        Assert.Equal(PassFixture.Recreate, recreate.Request.Operation);
    }

    [Theory]
    [InlineData("check", "ModifyNetworkInterfaceAttribute", "")]
    [InlineData("replace", "ReplaceRoute", "rtb-x")]
    [InlineData("delete", "DeleteRoute", "rtb-x")]
    [InlineData("create", "CreateRoute", "rtb-x")]
    public void Each_operation_with_a_call_sends_its_ec2_action_on_its_table(string operation, string action, string table)
    {
        RouteOperation chosen = operation switch
        {
            "check" => PassFixture.Check,
            "replace" => PassFixture.Replace,
            "delete" => PassFixture.Delete,
            _ => PassFixture.Recreate,
        };
        var pass = ReconcilePass.Start("plan").Described([PassFixture.Described]).Planned([chosen]);
        var request = Assert.IsType<PassStep.CallEc2>(pass.NextStep(Now)).Request;
        Assert.Equal((action, table), (request.Action, request.Table));
        Assert.Equal(("DescribeRouteTables", ""), (new Ec2Request.DescribeTables().Action, new Ec2Request.DescribeTables().Table));
    }

    [Fact]
    public void Operations_without_a_call_have_no_ec2_request()
    {
        Assert.Throws<ArgumentException>(() => new Ec2Request.Operate(PassFixture.Confirm));
        Assert.Throws<ArgumentException>(() => new Ec2Request.Operate(PassFixture.Gone));
    }

    [Fact]
    public void After_the_last_operation_the_pass_finishes()
    {
        Assert.IsType<PassStep.Finish>(PassFixture.At(PassFixture.Replace).Advanced().NextStep(Now));
        Assert.IsType<PassStep.Finish>(ReconcilePass.Start("plan").Described([]).Planned([]).NextStep(Now));
    }

    [Fact]
    public void A_call_that_went_through_is_recorded_and_creates_and_deletes_keep_the_tables_route_count()
    {
        var waiting = PassFixture.At(PassFixture.Create) with { WaitingFor = PassWait.Ec2 };
        var (created, createdEvent) = waiting.Succeeded(PassFixture.Create, Now);
        Assert.Equal(3, created.RouteCounts["rtb-x"]);
        Assert.Equal(PassWait.Nothing, created.WaitingFor);
        Assert.Equal(new RouteCreated("rtb-x", PassFixture.S1, PassFixture.A1, "eni-a1", Now, "plan"), createdEvent);

        var (deleted, deletedEvent) = PassFixture.At(PassFixture.Delete).Succeeded(PassFixture.Delete, Now);
        Assert.Equal(1, deleted.RouteCounts["rtb-x"]);
        Assert.Equal(new RouteDeleted("rtb-x", PassFixture.S1, PassFixture.A1, Now, "plan"), deletedEvent);

        var (replaced, replacedEvent) = PassFixture.At(PassFixture.Replace).Succeeded(PassFixture.Replace, Now);
        Assert.Equal(2, replaced.RouteCounts["rtb-x"]);
        Assert.Equal(new RouteReplaced("rtb-x", PassFixture.S1, PassFixture.A2, PassFixture.A1, "eni-a1", Now, "failover"), replacedEvent);

        var (_, checkedEvent) = PassFixture.At(PassFixture.Replace).Succeeded(PassFixture.Check, Now);
        Assert.Equal(new SourceDestCheckDisabled(PassFixture.A1, "eni-a1", Now, "node can receive and forward pod traffic"), checkedEvent);
    }
}

public class FailedCallDecisionTests
{
    private const int MaxAttempts = 5;
    private static readonly DateTimeOffset Now = PassFixture.Now;

    private static FailedCallDecision Decide(RouteOperation operation, Exception failure, int attempt = 0) =>
        FailedCallDecision.For(PassFixture.At(operation, attempt), new Ec2Request.Operate(operation), failure, MaxAttempts, Now);

    [Theory]
    [InlineData("RequestLimitExceeded", 400)]
    [InlineData("Throttling", 400)]
    [InlineData("InternalError", 500)]
    [InlineData("Unavailable", 503)]
    public void Throttling_and_server_errors_are_retried_after_a_backoff_while_attempts_are_left(string code, int status)
    {
        var error = new Ec2Error(code, status, "try later");
        Assert.Equal(new FailedCallDecision.RetryAfterBackoff(error, 1), Decide(PassFixture.Create, error));
        Assert.Equal(new FailedCallDecision.RetryAfterBackoff(error, MaxAttempts), Decide(PassFixture.Create, error, MaxAttempts - 1));
    }

    [Fact]
    public void A_failure_that_is_not_an_ec2_answer_counts_as_unavailable_and_is_retried()
    {
        var retry = Assert.IsType<FailedCallDecision.RetryAfterBackoff>(Decide(PassFixture.Replace, new TimeoutException("no answer")));
        Assert.Equal(("Unavailable", 503, "no answer", 1), (retry.Error.Code, retry.Error.StatusCode, retry.Error.Detail, retry.Attempt));
    }

    [Fact]
    public void When_the_attempts_run_out_the_failure_is_recorded_and_the_pass_ends()
    {
        var error = new Ec2Error("RequestLimitExceeded", 400, "slow down");
        var ended = Assert.IsType<FailedCallDecision.RecordFailureAndEndPass>(Decide(PassFixture.Create, error, MaxAttempts));
        Assert.Equal(new Ec2CallFailed("CreateRoute", "rtb-x", "RequestLimitExceeded", "RequestLimitExceeded: slow down", Now,
            "retried on the next pass"), ended.Failed);
        Assert.Equal("EC2 kept answering RequestLimitExceeded", ended.Problem);
    }

    [Fact]
    public void A_route_limit_met_by_a_create_teaches_the_routes_the_table_holds_now_as_its_limit()
    {
        var error = new Ec2Error("RouteLimitExceeded", 400, "full");
        Assert.Equal(new FailedCallDecision.LearnRouteLimit(error, new RouteLimitLearned("rtb-x", 2, Now, "budget")),
            Decide(PassFixture.Create, error));
        // The count follows the calls of the pass: after one create went through, the table held three.
        var afterOne = PassFixture.At(PassFixture.Create).Succeeded(PassFixture.Create, Now).Pass;
        var learned = FailedCallDecision.For(afterOne, new Ec2Request.Operate(PassFixture.Create), error, MaxAttempts, Now);
        Assert.Equal(3, Assert.IsType<FailedCallDecision.LearnRouteLimit>(learned).Learned.Limit);
    }

    [Fact]
    public void A_create_that_finds_its_destination_taken_is_skipped_without_a_record()
    {
        var error = new Ec2Error("RouteAlreadyExists", 400, "taken");
        Assert.Equal(new FailedCallDecision.SkipOperation(error), Decide(PassFixture.Create, error));
    }

    [Fact]
    public void A_delete_of_a_route_already_gone_records_it_deleted()
    {
        var error = new Ec2Error("InvalidRoute.NotFound", 400, "no such route");
        Assert.Equal(new FailedCallDecision.RecordAlreadyGone(error,
            new RouteDeleted("rtb-x", PassFixture.S1, PassFixture.A1, Now, "already gone from EC2")), Decide(PassFixture.Delete, error));
    }

    [Theory]
    [InlineData("replace", "RouteLimitExceeded")]
    [InlineData("replace", "RouteAlreadyExists")]
    [InlineData("create", "InvalidRoute.NotFound")]
    [InlineData("delete", "InvalidParameterValue")]
    [InlineData("check", "UnauthorizedOperation")]
    public void Any_other_error_is_recorded_and_the_pass_goes_on_with_the_next_operation(string operation, string code)
    {
        RouteOperation chosen = operation switch
        {
            "replace" => PassFixture.Replace,
            "create" => PassFixture.Create,
            "delete" => PassFixture.Delete,
            _ => PassFixture.Check,
        };
        var request = new Ec2Request.Operate(chosen);
        var error = new Ec2Error(code, 400, "no");
        Assert.Equal(new FailedCallDecision.RecordFailureAndAdvance(error,
            new Ec2CallFailed(request.Action, request.Table, code, $"{code}: no", Now, "retried on the next pass")), Decide(chosen, error));
    }

    [Fact]
    public void A_describe_that_fails_for_good_is_recorded_and_ends_the_pass_as_there_is_nothing_to_plan()
    {
        var error = new Ec2Error("UnauthorizedOperation", 403, "not allowed");
        var decision = FailedCallDecision.For(ReconcilePass.Start("plan"), new Ec2Request.DescribeTables(), error, MaxAttempts, Now);
        var ended = Assert.IsType<FailedCallDecision.RecordFailureAndEndPass>(decision);
        Assert.Equal(new Ec2CallFailed("DescribeRouteTables", "", "UnauthorizedOperation", "UnauthorizedOperation: not allowed", Now,
            "retried on the next pass"), ended.Failed);
        Assert.Equal("the route tables could not be described: UnauthorizedOperation: not allowed", ended.Problem);
    }
}

public class ReconcilerJournalFactsTests
{
    private static readonly DateTimeOffset Now = PassFixture.Now;
    private static readonly RouteTableSelector Selector = new([], "romana.io/cluster", "lab");

    private static readonly RoutingInput Input = new(
        [new PlanSubnet(new("s1"), PassFixture.S1, "rtb-x"), new PlanSubnet(new("s2"), Ipv4Cidr.Parse("100.64.1.0/24"), "rtb-y")],
        [], [], [new PlanTable("rtb-x", 48), new PlanTable("rtb-y", 49)]);

    [Fact]
    public void Only_tables_the_journal_does_not_know_are_adopted_with_the_selector_that_found_them()
    {
        var state = RouteManagerState.Empty.Apply(new RouteTableAdopted("rtb-x", Now, "selected by ids rtb-x"));
        Assert.Equal<IRouteEvent>([new RouteTableAdopted("rtb-y", Now, "selected by tag romana.io/cluster=lab")],
            Reconciler.Adopted(state, [PassFixture.Described, new Ec2RouteTable("rtb-y", [], [])], Selector, Now));
    }

    [Fact]
    public void Budgets_and_served_subnets_are_observed_when_they_differ_from_the_journal_and_not_again()
    {
        var observed = Reconciler.BudgetsObserved(RouteManagerState.Empty, Input, Now);
        Assert.NotNull(observed);
        Assert.Equal(("tables described", 48, 49), (observed.Reason, observed.Budgets["rtb-x"], observed.Budgets["rtb-y"]));
        Assert.Equal<SubnetId>([new SubnetId("s1")], observed.Serves!["rtb-x"]);

        var known = RouteManagerState.Empty.Apply(observed);
        Assert.Null(Reconciler.BudgetsObserved(known, Input, Now));
        var smaller = Input with { Tables = [new PlanTable("rtb-x", 47), new PlanTable("rtb-y", 49)] };
        Assert.NotNull(Reconciler.BudgetsObserved(known, smaller, Now));
        var moved = Input with { Subnets = [Input.Subnets[0] with { RouteTable = "rtb-y" }, Input.Subnets[1]] };
        Assert.NotNull(Reconciler.BudgetsObserved(known, moved, Now));
    }
}
