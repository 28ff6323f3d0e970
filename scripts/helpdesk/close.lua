-- POST /api/helpdesk/ticket/{id}/close: close an open ticket.
function handle(ctx, req)
    local ticket = ctx.db.get("ticket", req.params.id)
    if ticket == nil then
        ctx.fail(404, "no ticket with this id")
    end
    if ticket.status == "closed" then
        ctx.fail(409, "the ticket is already closed")
    end
    local closed = ctx.db.update("ticket", ticket.id, { status = "closed", closed_at = ctx.now() })
    ctx.log.info("ticket " .. ticket.id .. " closed")
    return closed
end
