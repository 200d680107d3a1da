-- Argo CD health check for argoproj.io/Application, needed by the app-of-apps of root-application.yaml.
-- Argo CD 1.8 stopped assessing the health of Applications, so a parent sees a child Application as Healthy
-- the moment it exists and its sync waves wait for nothing. Installed under
-- resource.customizations.health.argoproj.io_Application in argocd-cm (see argocd-cm.yaml), it reports the
-- child's own health instead: Progressing until the child has synced and its resources are healthy.
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for the Application controller to assess this Application"

if obj.status == nil or obj.status.health == nil or obj.status.health.status == nil then
  return hs
end

local health = obj.status.health.status
local message = obj.status.health.message or ""
local operation = obj.status.operationState

-- A sync in progress: the health shown may still be the one of the previous revision.
if operation ~= nil and operation.phase == "Running" then
  hs.message = "Syncing"
  if operation.message ~= nil and operation.message ~= "" then
    hs.message = hs.message .. ": " .. operation.message
  end
  return hs
end

if health == "Healthy" or health == "Degraded" or health == "Suspended" then
  hs.status = health
  hs.message = message
  return hs
end

-- Missing, Unknown or Progressing: the child is not there yet; wait for it.
hs.message = health
if message ~= "" then
  hs.message = health .. ": " .. message
end
return hs
