using System.Collections.Immutable;
using Romana.Actors.Addressing;
using Romana.Actors.Routing;
using static Romana.Actors.Routing.RouteManagerMessages;

namespace Romana.Actors.Tests.Routing;

/// <summary>Operations as they would come out of a plan, and the EC2 errors they may meet.</summary>
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

    public static readonly CallBudget Budget = new(ReserveForRepairs: 10, MaxCallsInFlight: 20);
    public static readonly IReadOnlySet<NodeName> NoneFailed = new HashSet<NodeName>();

    /// <summary>EC2's bucket, full at <see cref="Now"/>.</summary>
    public static TokenBucket Ec2Bucket(double tokens = 50) => new(50, 5, tokens, Now);

    /// <summary>The operation of each kind with a call, by name: check, create, replace or delete.</summary>
    public static RouteOperation Named(string operation) => operation switch
    {
        "check" => Check,
        "create" => Create,
        "replace" => Replace,
        "delete" => Delete,
        _ => throw new ArgumentException($"no operation named {operation}", nameof(operation)),
    };

    public static RouteOperation.Create CreateIn(string table, string cidr, string node = "a1") =>
        new(table, Ipv4Cidr.Parse(cidr), new NodeName(node), $"eni-{node}", false, "plan");
}

public class TokenBucketTests
{
    private static readonly DateTimeOffset Now = PassFixture.Now;

    [Fact]
    public void A_bucket_refills_at_its_rate_up_to_its_capacity()
    {
        var empty = PassFixture.Ec2Bucket(0);
        Assert.Equal(5, empty.Refilled(Now.AddSeconds(1)).Tokens, 6);
        Assert.Equal(50, empty.Refilled(Now.AddMinutes(5)).Tokens, 6);
        Assert.Equal(empty, empty.Refilled(Now.AddSeconds(-1))); // time does not run backwards
    }

    [Fact]
    public void A_token_is_taken_only_with_the_kept_reserve_left_over_and_the_wait_says_when_one_can()
    {
        var bucket = PassFixture.Ec2Bucket(10.5);
        Assert.False(bucket.CanTake(Now, keep: 10));
        Assert.True(bucket.CanTake(Now, keep: 9));
        Assert.Equal(9.5, bucket.Take(Now).Tokens, 6);
        Assert.Equal(TimeSpan.FromMilliseconds(100), bucket.Until(Now, keep: 10)); // half a token at 5 per second
        Assert.Equal(TimeSpan.Zero, bucket.Until(Now, keep: 0));
        Assert.Equal(0, bucket.Emptied(Now).Tokens);
    }
}

public class RouteWorkTests
{
    private static readonly DateTimeOffset Now = PassFixture.Now;
    private static readonly NodeName A1 = PassFixture.A1;
    private static readonly NodeName A2 = PassFixture.A2;
    private static readonly Dictionary<string, int> Room = new() { ["rtb-x"] = 100, ["rtb-y"] = 100 };

    private static RouteWork Work(double tokens = 50) => RouteWork.Start(PassFixture.Ec2Bucket(tokens));

    [Fact]
    public void Repairs_go_first_then_records_of_what_ec2_shows_then_plan_work_then_source_dest_checks()
    {
        var failed = new HashSet<NodeName> { A2 };
        var plan = PassFixture.CreateIn("rtb-y", "100.64.9.0/24");
        var work = Work().Replanned([PassFixture.Check, plan, PassFixture.Replace, PassFixture.Confirm with { Table = "rtb-z" }], failed);
        Assert.Equal([WorkPriority.Record, WorkPriority.Repair, WorkPriority.Plan, WorkPriority.SourceDestCheck],
            work.Waiting.Select(o => RouteWork.PriorityOf(o, failed)));
        Assert.Equal(WorkPriority.Plan, RouteWork.PriorityOf(PassFixture.Replace, PassFixture.NoneFailed));
        Assert.Equal(WorkPriority.Repair, RouteWork.PriorityOf(PassFixture.Delete, new HashSet<NodeName> { A1 }));
    }

    [Fact]
    public void Plan_work_leaves_the_reserve_in_the_bucket_and_a_repair_may_spend_it()
    {
        var plan = Enumerable.Range(0, 20).Select(i => (RouteOperation)PassFixture.CreateIn("rtb-y", $"100.64.{i}.0/24")).ToList();
        var (work, started, wake) = Work(tokens: 15).Replanned(plan, PassFixture.NoneFailed)
            .Take(Now, Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Equal(5, started.Length); // 15 tokens, 10 kept
        Assert.Equal(Now.AddMilliseconds(200), wake); // the next token beyond the reserve
        var failed = new HashSet<NodeName> { A2 };
        (_, started, _) = work.Replanned([.. plan, PassFixture.Replace], failed).Take(Now, Room, PassFixture.Budget, failed);
        Assert.Equal(PassFixture.Replace, Assert.Single(started).Operation); // ahead of the 15 plan creates still waiting
    }

    [Fact]
    public void Calls_run_concurrently_up_to_the_limit_and_one_per_key()
    {
        var creates = Enumerable.Range(0, 30).Select(i => (RouteOperation)PassFixture.CreateIn("rtb-y", $"100.64.{i}.0/24")).ToList();
        var (work, started, _) = Work().Replanned(creates, PassFixture.NoneFailed)
            .Take(Now, Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Equal(20, started.Length);
        Assert.Equal(20, work.CallsInFlight);
        // A new plan with the same keys does not start them twice.
        (work, started, _) = work.Replanned(creates, PassFixture.NoneFailed).Take(Now, Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Empty(started);
        Assert.Equal(10, work.Waiting.Length);
        (_, started, _) = work.Finished(creates[0]).Take(Now, Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Single(started);
    }

    [Fact]
    public void A_create_waits_for_room_in_its_table_counting_the_creates_under_way()
    {
        var creates = new RouteOperation[]
        {
            PassFixture.CreateIn("rtb-x", "100.64.1.0/24"), PassFixture.CreateIn("rtb-x", "100.64.2.0/24"),
            PassFixture.CreateIn("rtb-y", "100.64.3.0/24"),
        };
        var room = new Dictionary<string, int> { ["rtb-x"] = 1, ["rtb-y"] = 5 };
        var (work, started, _) = Work().Replanned(creates, PassFixture.NoneFailed)
            .Take(Now, room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Equal([creates[0], creates[2]], started.Select(s => s.Operation));
        Assert.Equal<RouteOperation>([creates[1]], work.Waiting);
    }

    [Fact]
    public void Records_take_no_token_and_start_at_once()
    {
        var (_, started, _) = Work(tokens: 0).Replanned([PassFixture.Confirm, PassFixture.Create with { Table = "rtb-y" }],
            PassFixture.NoneFailed).Take(Now, Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Equal(PassFixture.Confirm, Assert.Single(started).Operation);
    }

    [Fact]
    public void A_retry_waits_for_its_backoff_keeps_its_attempt_and_a_throttle_empties_the_bucket()
    {
        var (work, started, _) = Work().Replanned([PassFixture.Create], PassFixture.NoneFailed)
            .Take(Now, Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Single(started);
        work = work.RetryLater(PassFixture.Create, 2, Now.AddSeconds(1), throttled: true, Now, PassFixture.NoneFailed);
        Assert.Equal(0, work.Bucket.Tokens);
        var (_, none, wake) = work.Take(Now.AddMilliseconds(500), Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Empty(none);
        Assert.Equal(Now.AddSeconds(1), wake);
        // At 3 s the bucket holds 15 tokens: enough beyond the reserve.
        var (_, again, _) = work.Replanned([PassFixture.Create], PassFixture.NoneFailed)
            .Take(Now.AddSeconds(3), Room, PassFixture.Budget, PassFixture.NoneFailed);
        Assert.Equal(new StartedOperation(PassFixture.Create, 2), Assert.Single(again));
    }
}

public class RouteCallsTests
{
    private static readonly DateTimeOffset Now = PassFixture.Now;

    [Fact]
    public void A_new_route_is_claimed_before_its_create_is_sent_and_a_route_already_romanas_is_not_claimed_again()
    {
        Assert.Equal<IRouteEvent>([new RouteClaimed("rtb-x", PassFixture.S1, PassFixture.A1, "eni-a1", Now, "plan")],
            RouteCalls.RecordFirst(PassFixture.Create, Now));
        Assert.Empty(RouteCalls.RecordFirst(PassFixture.Recreate, Now));
        Assert.Empty(RouteCalls.RecordFirst(PassFixture.Replace, Now));
    }

    [Theory]
    [InlineData("check", "ModifyNetworkInterfaceAttribute")]
    [InlineData("create", "CreateRoute")]
    [InlineData("replace", "ReplaceRoute")]
    [InlineData("delete", "DeleteRoute")]
    public void Each_operation_with_a_call_names_its_ec2_action(string operation, string action)
    {
        var chosen = PassFixture.Named(operation);
        Assert.True(RouteCalls.NeedsCall(chosen));
        Assert.Equal(action, RouteCalls.ActionOf(chosen));
    }

    [Fact]
    public void Operations_without_a_call_record_what_ec2_shows()
    {
        Assert.All(new RouteOperation[] { PassFixture.Confirm, PassFixture.Drop, PassFixture.Gone },
            o => Assert.False(RouteCalls.NeedsCall(o)));
        Assert.Equal(new RouteCreated("rtb-x", PassFixture.S1, PassFixture.A1, "eni-a1", Now, "created before the manager restarted"),
            RouteCalls.Found(PassFixture.Confirm, Now));
        Assert.Equal(new RouteClaimDropped("rtb-x", PassFixture.S1, Now, "exists with target eni-z, which Romana did not set"),
            RouteCalls.Found(PassFixture.Drop, Now));
        Assert.Equal(new RouteDeleted("rtb-x", PassFixture.S1, PassFixture.A1, Now, "already gone from EC2"),
            RouteCalls.Found(PassFixture.Gone, Now));
    }

    [Fact]
    public void A_call_that_went_through_is_recorded_and_the_view_of_ec2_follows_it()
    {
        Assert.Equal(new RouteCreated("rtb-x", PassFixture.S1, PassFixture.A1, "eni-a1", Now, "plan"),
            RouteCalls.Succeeded(PassFixture.Create, Now));
        Assert.Equal(new RouteReplaced("rtb-x", PassFixture.S1, PassFixture.A2, PassFixture.A1, "eni-a1", Now, "failover"),
            RouteCalls.Succeeded(PassFixture.Replace, Now));
        Assert.Equal(new SourceDestCheckDisabled(PassFixture.A1, "eni-a1", Now, "node can receive and forward pod traffic"),
            RouteCalls.Succeeded(PassFixture.Check, Now));

        ImmutableArray<Ec2RouteTable> tables = [PassFixture.Described];
        var created = RouteCalls.After(tables, PassFixture.Create);
        Assert.Contains(new Ec2Route("100.64.0.0/24", "eni-a1"), created[0].Routes);
        Assert.Equal<Ec2Route>(created[0].Routes, RouteCalls.After(created, PassFixture.Create)[0].Routes); // twice: the same
        var replaced = RouteCalls.After(created, PassFixture.Replace with { Eni = "eni-a2" });
        Assert.Contains(new Ec2Route("100.64.0.0/24", "eni-a2"), replaced[0].Routes);
        Assert.DoesNotContain(replaced[0].Routes, r => r.Destination == "100.64.0.0/24" && r.Target == "eni-a1");
        Assert.DoesNotContain(RouteCalls.After(replaced, PassFixture.Delete)[0].Routes, r => r.Destination == "100.64.0.0/24");
        Assert.Equal(3, RouteCalls.After(tables, PassFixture.Check)[0].Routes.Length);
    }
}

public class FailedCallDecisionTests
{
    private const int MaxAttempts = 5;
    private static readonly DateTimeOffset Now = PassFixture.Now;

    private static FailedCallDecision Decide(RouteOperation operation, Exception failure, int attempt = 0, int routesInTable = 2) =>
        FailedCallDecision.For(operation, attempt, failure, MaxAttempts, routesInTable, Now);

    [Theory]
    [InlineData("RequestLimitExceeded", 400)]
    [InlineData("Throttling", 400)]
    [InlineData("InternalError", 500)]
    [InlineData("Unavailable", 503)]
    public void Throttling_and_server_errors_are_retried_after_a_backoff_while_attempts_are_left(string code, int status)
    {
        var error = new Ec2Error(code, status, "try later");
        Assert.Equal(new FailedCallDecision.RetryAfterBackoff(error, 1, null), Decide(PassFixture.Create, error));
        Assert.Equal(new FailedCallDecision.RetryAfterBackoff(error, MaxAttempts + 1, null),
            Decide(PassFixture.Create, error, MaxAttempts));
    }

    [Fact]
    public void A_failure_that_is_not_an_ec2_answer_counts_as_unavailable_and_is_retried()
    {
        var retry = Assert.IsType<FailedCallDecision.RetryAfterBackoff>(Decide(PassFixture.Replace, new TimeoutException("no answer")));
        Assert.Equal(("Unavailable", 503, "no answer", 1), (retry.Error.Code, retry.Error.StatusCode, retry.Error.Detail, retry.Attempt));
    }

    [Fact]
    public void When_the_attempts_reach_the_most_the_failure_is_recorded_once_and_the_call_still_retried()
    {
        var error = new Ec2Error("RequestLimitExceeded", 400, "slow down");
        var retry = Assert.IsType<FailedCallDecision.RetryAfterBackoff>(Decide(PassFixture.Create, error, MaxAttempts - 1));
        Assert.Equal(new Ec2CallFailed("CreateRoute", "rtb-x", "RequestLimitExceeded", "RequestLimitExceeded: slow down", Now,
            "EC2 kept answering RequestLimitExceeded; still retried"), retry.Failed);
        Assert.Equal(MaxAttempts, retry.Attempt);
    }

    [Fact]
    public void A_route_limit_met_by_a_create_teaches_the_routes_the_table_holds_now_as_its_limit()
    {
        var error = new Ec2Error("RouteLimitExceeded", 400, "full");
        Assert.Equal(new FailedCallDecision.LearnRouteLimit(error, new RouteLimitLearned("rtb-x", 2, Now, "budget")),
            Decide(PassFixture.Create, error));
        var learned = Assert.IsType<FailedCallDecision.LearnRouteLimit>(Decide(PassFixture.Create, error, routesInTable: 3));
        Assert.Equal(3, learned.Learned.Limit);
    }

    [Fact]
    public void A_create_that_finds_its_destination_taken_describes_again_without_a_record()
    {
        var error = new Ec2Error("RouteAlreadyExists", 400, "taken");
        Assert.Equal(new FailedCallDecision.DescribeAgain(error), Decide(PassFixture.Create, error));
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
    public void Any_other_error_is_recorded_and_tried_again_at_the_next_check(string operation, string code)
    {
        var chosen = PassFixture.Named(operation);
        var error = new Ec2Error(code, 400, "no");
        Assert.Equal(new FailedCallDecision.RecordAndRetryLater(error,
            new Ec2CallFailed(RouteCalls.ActionOf(chosen), chosen.Table, code, $"{code}: no", Now, "retried at the next check")),
            Decide(chosen, error));
    }

    [Fact]
    public void A_describe_that_fails_for_good_is_recorded_and_tried_again_at_the_next_check()
    {
        var error = new Ec2Error("UnauthorizedOperation", 403, "not allowed");
        var later = Assert.IsType<FailedCallDecision.RecordAndRetryLater>(FailedCallDecision.For(null, 0, error, MaxAttempts, 0, Now));
        Assert.Equal(new Ec2CallFailed("DescribeRouteTables", "", "UnauthorizedOperation", "UnauthorizedOperation: not allowed", Now,
            "retried at the next check"), later.Failed);
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
