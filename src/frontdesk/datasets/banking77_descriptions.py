"""Workflow titles and descriptions for the 77 BANKING77 intents.

Each BANKING77 intent is mapped to a ``(title, description)`` pair written the way a
payments / online-banking support team would describe its internal workflow for that
kind of contact: the customer's situation in everyday words, plus what the agent does.
They are meant for zero-shot retrieval, where customer questions are matched to
workflows from title and description alone.

Provenance: these texts were written from the intent names alone (as listed in
``categories.json``) and general knowledge of how a card / e-money app's support works.
No customer questions from the dataset (``train.csv`` / ``test.csv``) were read.
In the fifth session 14 entries were revised (the intents most often missed and the
workflows they were mistaken for) after a zero-shot run on the *train* split, used as
validation: only per-intent accuracy and confusion counts were read, still no question
text; the test split was read afterwards only for the numbers in BENCHMARKS.md.
Intent names keep the dataset's exact spelling, including ``Refund_not_showing_up``
and ``reverted_card_payment?``.
"""

from __future__ import annotations

DESCRIPTIONS: dict[str, tuple[str, str]] = {
    # --- Cards: ordering, delivery, activation ----------------------------------------------------
    "card_arrival": (
        "New card has not arrived",
        "The customer ordered a card and it has not been delivered yet; check the dispatch date "
        "and delivery status, and reorder if it is lost in the post.",
    ),
    "card_delivery_estimate": (
        "How long card delivery takes",
        "The customer wants to know how long a card takes to arrive after ordering, or whether "
        "express delivery is possible; give the expected delivery times for their country.",
    ),
    "activate_my_card": (
        "Activate a newly received card",
        "The customer has received their new card and wants to activate it so it can be used; "
        "walk them through activating the card in the app and fix activation errors.",
    ),
    "card_linking": (
        "Link a card to the app account",
        "The customer wants to link or connect a card to their account in the app, such as a new "
        "card they received or a card they already hold; guide them through linking it.",
    ),
    "order_physical_card": (
        "Order a physical card",
        "The customer wants to place an order for a plastic card and asks how to order it, "
        "what it costs or where it will be sent; guide them through ordering it in the app.",
    ),
    "get_physical_card": (
        "Get a physical card and its PIN",
        "The customer only has a virtual card or has just joined and asks how to get a real "
        "plastic card and where to find its PIN; explain the steps and how to view the PIN.",
    ),
    "getting_spare_card": (
        "Order an additional spare card",
        "The customer wants an extra or spare card on the same account, for example as a backup "
        "or for a family member; explain whether additional cards are possible and how to order.",
    ),
    "card_about_to_expire": (
        "Card is about to expire",
        "The customer's card is expiring soon or has just expired and they need a new one; "
        "explain whether a replacement is sent automatically and how to order it otherwise.",
    ),
    "visa_or_mastercard": (
        "Is the card Visa or Mastercard",
        "The customer asks whether our card is a Visa or a Mastercard, or whether they can choose "
        "the card network; explain which network we issue and where choice is possible.",
    ),
    # --- Virtual and disposable cards -------------------------------------------------------------
    "getting_virtual_card": (
        "Get a virtual card",
        "The customer wants a virtual card for paying online and asks how to create one, whether "
        "it costs anything and where it works; explain how to set up a virtual card in the app.",
    ),
    "virtual_card_not_working": (
        "Virtual card is not working",
        "The customer's existing virtual card is being declined or does not work for online "
        "payments; check the virtual card's status, limits and the merchant, and explain the fix.",
    ),
    "get_disposable_virtual_card": (
        "Get a disposable single-use card",
        "The customer wants a disposable virtual card whose number changes after each use, for "
        "safer online shopping, and asks how to create one; explain how single-use cards work.",
    ),
    "disposable_card_limits": (
        "Limits on disposable virtual cards",
        "The customer asks how many disposable virtual cards they can create, how often, or how "
        "much they can spend with one; explain the number and spending limits of single-use "
        "cards.",
    ),
    # --- Card problems and security ---------------------------------------------------------------
    "card_not_working": (
        "Card has stopped working",
        "The customer's card does not work anywhere, seems broken, damaged or dead, or stopped "
        "working suddenly; check the card status and blocks and send a replacement if needed.",
    ),
    "contactless_not_working": (
        "Contactless payments not working",
        "Tapping the card to pay does not work even though chip and PIN may still work; explain "
        "contactless limits and the first chip-and-PIN payment rule, and check the card settings.",
    ),
    "card_acceptance": (
        "Where the card is accepted",
        "The customer asks whether the card will be accepted at a particular shop, website or "
        "ATM, or why a merchant does not take it; explain where the card can and cannot be "
        "used.",
    ),
    "lost_or_stolen_card": (
        "Report a lost or stolen card",
        "The customer has lost their card or it was stolen; freeze or cancel the card right away, "
        "check for payments they did not make, and order a replacement card.",
    ),
    "compromised_card": (
        "Card details may be compromised",
        "The customer still has the card but thinks someone else got its details, for example "
        "after a scam, phishing or data leak; block the card, review transactions and issue a new "
        "one.",
    ),
    "card_swallowed": (
        "ATM kept the card",
        "A cash machine swallowed or kept the customer's card and did not give it back; freeze "
        "the card, advise contacting the ATM owner, and order a replacement card.",
    ),
    "pin_blocked": (
        "Card PIN is blocked",
        "The customer entered the wrong PIN too many times and the PIN is now blocked or locked; "
        "explain how to unblock the PIN in the app or at an ATM and confirm it works again.",
    ),
    "change_pin": (
        "Change the card PIN",
        "The customer wants to change their card PIN to a new number they can remember; explain "
        "how to change the PIN at an ATM or in the app and any restrictions on choosing a PIN.",
    ),
    "apple_pay_or_google_pay": (
        "Apple Pay or Google Pay",
        "The customer wants to use Apple Pay or Google Pay, add their card to the phone's "
        "wallet or top up through it, or it is not working; explain support, setup on the "
        "phone and common fixes.",
    ),
    # --- Card payments ----------------------------------------------------------------------------
    "pending_card_payment": (
        "Card payment still pending",
        "A shop or online card purchase still shows as pending in the app instead of completed; "
        "explain that merchants settle later, how long pending payments last, and check it.",
    ),
    "declined_card_payment": (
        "Card payment was declined",
        "The customer tried to pay by card in a shop or online and the payment was declined or "
        "rejected; check balance, card status, merchant type and security blocks, and explain "
        "why.",
    ),
    "reverted_card_payment?": (
        "Card payment was reversed",
        "A card payment the customer made was cancelled or went back and the money returned to "
        "the balance, and they ask why; explain authorisation reversals and merchant "
        "cancellations.",
    ),
    "card_payment_not_recognised": (
        "Unrecognised card payment",
        "The customer sees a card purchase from a shop or merchant they do not recognise and did "
        "not make; help identify the merchant, and if it is fraud freeze the card and raise a "
        "dispute.",
    ),
    "transaction_charged_twice": (
        "Payment charged twice",
        "The customer was charged twice for the same purchase and sees a duplicate transaction; "
        "check whether one is a temporary hold that will drop off and refund a real duplicate.",
    ),
    "card_payment_fee_charged": (
        "Fee charged on a card payment",
        "The customer was charged an extra fee for paying by card, for example on a purchase in a "
        "foreign currency; explain which card payments carry fees and refund any wrong fee.",
    ),
    "card_payment_wrong_exchange_rate": (
        "Wrong exchange rate on card payment",
        "A card purchase in a foreign currency or abroad was converted at a worse rate than the "
        "customer expected; compare the applied rate with the rate on that date and explain it.",
    ),
    "request_refund": (
        "Request a refund for a purchase",
        "The customer wants their money back for something they bought with the card, such as a "
        "return or cancelled order; explain asking the merchant for a refund and opening a "
        "dispute.",
    ),
    "Refund_not_showing_up": (
        "Refund not showing in account",
        "A merchant says they refunded the customer but the refund still has not appeared in "
        "the account or statement; explain how long refunds take to show and trace it with "
        "the merchant's refund reference.",
    ),
    "extra_charge_on_statement": (
        "Unexplained extra charge on statement",
        "The customer sees an extra fee or small unknown charge on their statement or transaction "
        "list and does not know what it is for; identify the charge and explain or refund it.",
    ),
    # --- Cash and ATMs ----------------------------------------------------------------------------
    "atm_support": (
        "Using the card at ATMs",
        "The customer asks which ATMs accept the card, where they can take out cash, or how to "
        "withdraw money at a cash machine; explain ATM support and cash withdrawal limits.",
    ),
    "pending_cash_withdrawal": (
        "Cash withdrawal still pending",
        "The customer took cash out at an ATM and the withdrawal still shows as pending in the "
        "app; explain how long ATM withdrawals stay pending and check that it completes.",
    ),
    "declined_cash_withdrawal": (
        "Cash withdrawal declined at the ATM",
        "The ATM declined the customer's card or rejected their cash withdrawal, so they "
        "could not take out money; check the balance, withdrawal limits, PIN and card blocks, "
        "and explain why the withdrawal was declined.",
    ),
    "wrong_amount_of_cash_received": (
        "ATM gave the wrong amount of cash",
        "The ATM dispensed less cash than the customer asked for, but the full amount was "
        "taken from the account; raise a claim with the ATM operator and refund the "
        "difference.",
    ),
    "cash_withdrawal_not_recognised": (
        "Unrecognised ATM cash withdrawal",
        "The customer sees a cash withdrawal from an ATM in their account that they did not make; "
        "freeze the card, check for card theft or cloning, and open a fraud claim.",
    ),
    "cash_withdrawal_charge": (
        "Fee charged on ATM withdrawal",
        "The customer was charged a fee for taking out cash or asks what ATM withdrawals cost; "
        "explain free withdrawal allowances, our withdrawal fee and fees set by the ATM owner.",
    ),
    "wrong_exchange_rate_for_cash_withdrawal": (
        "Wrong exchange rate on an ATM cash withdrawal",
        "The customer took out cash in a foreign currency from an ATM abroad and was charged "
        "a worse exchange rate for the withdrawal than expected; explain the rate applied to "
        "cash withdrawals and any conversion by the ATM operator.",
    ),
    # --- Top-ups ----------------------------------------------------------------------------------
    "topping_up_by_card": (
        "Top up using a card",
        "The customer wants to add money to their account with a debit or credit card from "
        "another bank; explain how to top up by card in the app and which cards work.",
    ),
    "transfer_into_account": (
        "Top up by bank transfer",
        "The customer wants to move their own money into this account by bank transfer from "
        "another bank and needs the account details; explain how to add money this way.",
    ),
    "top_up_by_cash_or_cheque": (
        "Top up with cash or cheque",
        "The customer wants to add money by paying in cash or depositing a cheque; explain "
        "whether cash and cheque deposits are supported, where, and how long they take.",
    ),
    "automatic_top_up": (
        "Set up or manage auto top-up",
        "The customer wants to turn on, change or turn off automatic top-up that adds money when "
        "the balance falls below a set amount; explain how auto top-up works and its settings.",
    ),
    "top_up_limits": (
        "Top-up and balance limits",
        "The customer asks the most money they can add in one top-up, per day or month, or the "
        "maximum balance the account can hold; explain the top-up and balance limits.",
    ),
    "pending_top_up": (
        "Top-up still pending",
        "The customer added money but the top-up still shows as pending and the money is not "
        "available to spend yet; explain processing times and check the top-up's status.",
    ),
    "top_up_failed": (
        "Top-up failed or declined",
        "The customer tried to add money but the top-up was declined or failed and the balance "
        "did not go up; check the card, limits and error reason, and help them try again.",
    ),
    "top_up_reverted": (
        "Completed top-up was reversed",
        "A top-up that went through and showed in the balance was later taken back out or "
        "reversed; find out why the card issuer or bank reversed it and explain what to do next.",
    ),
    "verify_top_up": (
        "Verify a card top-up",
        "The customer is asked to verify a card top-up, for example by entering a code shown on "
        "their bank statement; explain why card top-ups are verified and how to complete it.",
    ),
    "top_up_by_card_charge": (
        "Fee for topping up by card",
        "The customer was charged or asks about a fee for adding money with a debit or credit "
        "card; explain which card top-ups cost money, how much, and refund any wrong charge.",
    ),
    "top_up_by_bank_transfer_charge": (
        "Fee for a bank transfer top-up",
        "The customer asks whether there is a charge for topping up their own account by bank "
        "transfer, or why a top-up they sent by transfer arrived with less money than they "
        "sent; explain that we do not charge for bank transfer top-ups but the sending bank "
        "might.",
    ),
    "balance_not_updated_after_bank_transfer": (
        "Balance not updated after a transfer into my account",
        "The customer made a bank transfer into their own account and the money has left the "
        "other bank, but their balance here still has not gone up; check for the incoming "
        "payment by its reference and explain when it will be credited.",
    ),
    "balance_not_updated_after_cheque_or_cash_deposit": (
        "Cheque or cash deposit not in balance",
        "The customer paid in a cheque or cash but the balance still has not updated with that "
        "money; check the deposit's processing and clearing time and trace the deposit.",
    ),
    "supported_cards_and_currencies": (
        "Which card brands and currencies are accepted",
        "The customer asks whether a card brand such as Visa, Mastercard or American Express "
        "is accepted for adding money, or which currencies the account supports for top-ups "
        "and payments; list the accepted cards and currencies.",
    ),
    # --- Transfers --------------------------------------------------------------------------------
    "transfer_timing": (
        "How long a transfer takes",
        "The customer asks how long a transfer takes to arrive, for example a domestic, SEPA or "
        "international payment; explain expected delivery times and cut-off times per type.",
    ),
    "pending_transfer": (
        "Outgoing transfer still pending",
        "The customer sent a transfer and it still shows as pending in the app instead of "
        "completed; explain security checks and processing times and check the transfer's status.",
    ),
    "declined_transfer": (
        "Transfer declined when sending",
        "The customer's transfer was declined or rejected straight away when they tried to send "
        "it; check balance, limits and security flags, explain the reason and how to retry.",
    ),
    "failed_transfer": (
        "Transfer failed after sending",
        "A transfer the customer submitted later failed or bounced back instead of reaching the "
        "recipient; check the failure reason, make sure the money is returned and help resend.",
    ),
    "transfer_not_received_by_recipient": (
        "Recipient has not received transfer",
        "The transfer shows as completed on the customer's side, but the person they sent it to "
        "says the money has not arrived; check the recipient details and trace the payment.",
    ),
    "cancel_transfer": (
        "Cancel a transfer",
        "The customer sent a transfer by mistake, to the wrong person or wrong amount, and wants "
        "to cancel or stop it; check whether it has gone out and cancel or recall it if possible.",
    ),
    "beneficiary_not_allowed": (
        "Beneficiary not allowed",
        "The customer's transfer did not go through because the beneficiary is not allowed, "
        "or the app will not let them add or pay that recipient; check the beneficiary's "
        "details and restrictions and explain how to fix them.",
    ),
    "transfer_fee_charged": (
        "Fee charged on an outgoing transfer",
        "The customer sent money to someone else by transfer and was charged a fee for it "
        "they did not expect; explain our fees for sending payments and any charges taken by "
        "intermediary or receiving banks.",
    ),
    "receiving_money": (
        "Receive money from someone else",
        "The customer wants to receive money from another person or employer, such as a salary or "
        "a friend paying them back; explain which account details to share and arrival times.",
    ),
    # --- Currencies and exchange ------------------------------------------------------------------
    "exchange_rate": (
        "Exchange rates we use",
        "The customer asks what exchange rate we use, where our rates come from, or what rate "
        "they will get before converting; explain our rate source and where to see live rates.",
    ),
    "exchange_via_app": (
        "Exchange currency in the app",
        "The customer wants to convert money between currencies inside the app, for example "
        "pounds into euros in their balance; explain how in-app currency exchange works.",
    ),
    "exchange_charge": (
        "Fee for currency exchange",
        "The customer asks about or was charged a fee for exchanging money into another currency; "
        "explain exchange fees, weekend markups and any fee-free exchange allowance.",
    ),
    "fiat_currency_support": (
        "Which currencies can be held",
        "The customer asks which currencies they can hold, exchange or spend with the account, or "
        "whether a particular currency is supported; list the supported currencies.",
    ),
    # --- Account, identity and security -----------------------------------------------------------
    "verify_my_identity": (
        "How to verify my identity",
        "The customer wants to complete identity verification and asks what documents are needed "
        "and how to submit them; walk them through the ID check steps in the app.",
    ),
    "why_verify_identity": (
        "Why identity verification is needed",
        "The customer asks why they have to prove who they are or send ID documents and what "
        "happens to that data; explain legal know-your-customer rules and data protection.",
    ),
    "unable_to_verify_identity": (
        "Unable to verify my identity",
        "The customer cannot get through identity verification because the check failed, "
        "their ID document or selfie was not accepted, or the verification will not finish; "
        "troubleshoot the submission and review it manually if needed.",
    ),
    "verify_source_of_funds": (
        "Verify source of funds",
        "The customer is asked to prove where their money comes from, or asks how to do it; "
        "explain why source of funds checks happen and which documents such as payslips are "
        "accepted.",
    ),
    "edit_personal_details": (
        "Update personal details",
        "The customer wants to change their name, address, email, phone number or other personal "
        "details on the account; explain what can be edited in the app and what needs proof.",
    ),
    "passcode_forgotten": (
        "Forgot app passcode",
        "The customer forgot the passcode they use to log in to the app and is locked out; verify "
        "who they are and explain how to reset the passcode securely.",
    ),
    "lost_or_stolen_phone": (
        "Lost or stolen phone",
        "The customer lost their phone or it was stolen and worries someone can get into the "
        "banking app; lock the account and cards, end app sessions, and help them log in on a new "
        "phone.",
    ),
    "terminate_account": (
        "Close my account",
        "The customer wants to close or delete their account for good; explain how to withdraw "
        "the remaining balance, cancel cards and direct debits, and complete the account closure.",
    ),
    "direct_debit_payment_not_recognised": (
        "Unrecognised direct debit",
        "The customer sees a direct debit taken from the account that they did not set up or do "
        "not recognise; identify who collected it, cancel the mandate and claim a refund if "
        "unauthorised.",
    ),
    "age_limit": (
        "Minimum age to open an account",
        "The customer asks how old you have to be to open an account or get a card, or whether "
        "their child can use the service; explain the age requirements and options for minors.",
    ),
    "country_support": (
        "Countries where the service works",
        "The customer asks which countries the service is available in, whether they can open "
        "an account while living in their country, or whether they can keep using it after "
        "moving abroad; explain which countries are supported.",
    ),
}


# The support team's topic (queue) for each intent: the second tag of each BANKING77 workflow.
# Agents' skills are kept per topic, so the routing simulator reads them.
TOPICS: dict[str, str] = {
    "card_arrival": "cards",
    "card_delivery_estimate": "cards",
    "activate_my_card": "cards",
    "card_linking": "cards",
    "order_physical_card": "cards",
    "get_physical_card": "cards",
    "getting_spare_card": "cards",
    "card_about_to_expire": "cards",
    "visa_or_mastercard": "cards",
    "getting_virtual_card": "cards",
    "virtual_card_not_working": "cards",
    "get_disposable_virtual_card": "cards",
    "disposable_card_limits": "cards",
    "card_not_working": "cards",
    "contactless_not_working": "cards",
    "card_acceptance": "cards",
    "apple_pay_or_google_pay": "cards",
    "lost_or_stolen_card": "security",
    "compromised_card": "security",
    "card_swallowed": "security",
    "pin_blocked": "security",
    "change_pin": "security",
    "passcode_forgotten": "security",
    "lost_or_stolen_phone": "security",
    "pending_card_payment": "card_payments",
    "declined_card_payment": "card_payments",
    "reverted_card_payment?": "card_payments",
    "card_payment_not_recognised": "card_payments",
    "transaction_charged_twice": "card_payments",
    "card_payment_fee_charged": "card_payments",
    "card_payment_wrong_exchange_rate": "card_payments",
    "request_refund": "card_payments",
    "Refund_not_showing_up": "card_payments",
    "extra_charge_on_statement": "card_payments",
    "direct_debit_payment_not_recognised": "card_payments",
    "atm_support": "cash",
    "pending_cash_withdrawal": "cash",
    "declined_cash_withdrawal": "cash",
    "wrong_amount_of_cash_received": "cash",
    "cash_withdrawal_not_recognised": "cash",
    "cash_withdrawal_charge": "cash",
    "wrong_exchange_rate_for_cash_withdrawal": "cash",
    "topping_up_by_card": "top_up",
    "transfer_into_account": "top_up",
    "top_up_by_cash_or_cheque": "top_up",
    "automatic_top_up": "top_up",
    "top_up_limits": "top_up",
    "pending_top_up": "top_up",
    "top_up_failed": "top_up",
    "top_up_reverted": "top_up",
    "verify_top_up": "top_up",
    "top_up_by_card_charge": "top_up",
    "top_up_by_bank_transfer_charge": "top_up",
    "balance_not_updated_after_bank_transfer": "top_up",
    "balance_not_updated_after_cheque_or_cash_deposit": "top_up",
    "supported_cards_and_currencies": "top_up",
    "transfer_timing": "transfers",
    "pending_transfer": "transfers",
    "declined_transfer": "transfers",
    "failed_transfer": "transfers",
    "transfer_not_received_by_recipient": "transfers",
    "cancel_transfer": "transfers",
    "beneficiary_not_allowed": "transfers",
    "transfer_fee_charged": "transfers",
    "receiving_money": "transfers",
    "exchange_rate": "exchange",
    "exchange_via_app": "exchange",
    "exchange_charge": "exchange",
    "fiat_currency_support": "exchange",
    "verify_my_identity": "account",
    "why_verify_identity": "account",
    "unable_to_verify_identity": "account",
    "verify_source_of_funds": "account",
    "edit_personal_details": "account",
    "terminate_account": "account",
    "age_limit": "account",
    "country_support": "account",
}
