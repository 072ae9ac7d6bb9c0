// Editor side: the console command `Backchannel.Check` asks the worker to describe itself and says the answer in a
// notification and the log: is the worker reachable at the project's endpoints, which generator, what look-ahead
// (the A/V delay to apply starts there). The Live Link source factory itself lives in the runtime module, so
// presets work in packaged games too.
#include "Async/Async.h"
#include "BackchannelSubsystem.h"
#include "Framework/Notifications/NotificationManager.h"
#include "HAL/IConsoleManager.h"
#include "Modules/ModuleManager.h"
#include "Widgets/Notifications/SNotificationList.h"

class FBackchannelEditorModule : public IModuleInterface
{
public:
	virtual void StartupModule() override
	{
		Command = IConsoleManager::Get().RegisterConsoleCommand(TEXT("Backchannel.Check"),
			TEXT("Asks the Backchannel worker to describe itself (endpoints: Project Settings > Plugins > Backchannel)"),
			FConsoleCommandDelegate::CreateStatic(&FBackchannelEditorModule::Check), ECVF_Default);
	}

	virtual void ShutdownModule() override
	{
		if (Command)
		{
			IConsoleManager::Get().UnregisterConsoleObject(Command);
			Command = nullptr;
		}
	}

private:
	static void Check()
	{
		UBackchannelSubsystem* Subsystem = UBackchannelSubsystem::Get();
		if (!Subsystem)
		{
			return;
		}
		TSharedPtr<backchannel::Client, ESPMode::ThreadSafe> Client = Subsystem->GetClient();
		Async(EAsyncExecution::ThreadPool, [Client]()
		{
			const backchannel::ControlReply Reply = Client->request("describe");
			FString Text;
			if (Reply.ok)
			{
				auto Field = [&Reply](const char* Name)
				{
					auto It = Reply.fields.find(Name);
					return It == Reply.fields.end() ? FString(TEXT("?")) : FString(UTF8_TO_TCHAR(It->second.c_str()));
				};
				Text = FString::Printf(TEXT("Backchannel worker: protocol %s, %s fps, look-ahead %s s"),
					*Field("protocol"), *Field("frame_rate"), *Field("lookahead_s"));
			}
			else
			{
				Text = FString::Printf(TEXT("Backchannel worker: %s (%s)"), UTF8_TO_TCHAR(Reply.error.c_str()),
					UTF8_TO_TCHAR(Reply.message.c_str()));
			}
			AsyncTask(ENamedThreads::GameThread, [Text, bOk = Reply.ok]()
			{
				UE_LOG(LogBackchannel, Display, TEXT("%s"), *Text);
				FNotificationInfo Info(FText::FromString(Text));
				Info.ExpireDuration = 6.0f;
				TSharedPtr<SNotificationItem> Item = FSlateNotificationManager::Get().AddNotification(Info);
				if (Item.IsValid())
				{
					Item->SetCompletionState(bOk ? SNotificationItem::CS_Success : SNotificationItem::CS_Fail);
				}
			});
		});
	}

	IConsoleObject* Command = nullptr;
};

IMPLEMENT_MODULE(FBackchannelEditorModule, BackchannelEditor)
