-- GET /api/helpdesk/stats: how many tickets are open and closed, and the
-- open ones counted by priority (1 is the most urgent).
function handle(ctx, req)
    local by_priority = {}
    for p = 1, 5 do
        by_priority[tostring(p)] = ctx.db.count("ticket", { status = "open", priority = p })
    end
    return {
        open = ctx.db.count("ticket", { status = "open" }),
        closed = ctx.db.count("ticket", { status = "closed" }),
        open_by_priority = by_priority,
    }
end
