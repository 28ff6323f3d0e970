-- Entity hooks of helpdesk.ticket, for REST and script writes alike.

-- Titles are stored trimmed, with single spaces; a ticket without a
-- priority gets this tenant's default_priority setting.
function before_create(ctx, record)
    if type(record.title) == "string" then
        record.title = record.title:gsub("%s+", " "):match("^%s*(.-)%s*$")
    end
    if record.priority == nil then
        record.priority = ctx.settings.default_priority
    end
    return record
end

-- A closed ticket stays closed: reopening is a new ticket.
function before_update(ctx, old, changes)
    if old.status == "closed" and changes.status == "open" then
        ctx.fail(409, "a closed ticket cannot be reopened; open a new one")
    end
    return changes
end
