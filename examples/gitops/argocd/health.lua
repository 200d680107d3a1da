-- Argo CD health check for the cimi.dev kinds (CimiProvider, CimiNamespacedProvider, CimiMachine, CimiVolume,
-- CimiNetwork, CimiSystem, CimiMachineImage, CimiVolumeImage). Install it per kind under
-- resource.customizations.health.cimi.dev_<Kind> in argocd-cm (see argocd-cm.yaml). Reads the Ready, Reconciling and Stalled conditions and observedGeneration.
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for the operator"

if obj.status == nil then
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready, stalled, reconciling = nil, nil, nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" then
      stalled = condition
    elseif condition.type == "Reconciling" then
      reconciling = condition
    end
  end
end

local function describe(condition)
  local text = condition.reason or ""
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
end
return hs
